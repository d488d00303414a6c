"""A fake TWS for testing live trading code without IB: the real socket protocol on 127.0.0.1.

See :class:`FakeTWS`. The wire format is in :mod:`ibkrfw.testing.faketws.wire`.
"""

from ibkrfw.testing.faketws.server import FakeTWS, Recorded

__all__ = ["FakeTWS", "Recorded"]
