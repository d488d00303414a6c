"""Connection settings for TWS or IB Gateway, from a TOML file and environment variables.

:class:`IBKRConfig` is the ``[ibkr]`` table of the one configuration model,
:mod:`ibkrfw.config`, where it is defined (so that reading a configuration file never needs
the ``ibapi`` client); it is re-exported here, and from :mod:`ibkrfw.ibkr`.
"""

from __future__ import annotations

from typing import Final

from ibkrfw.config import IBKRConfig

__all__ = ["ENV_PREFIX", "IBKRConfig"]

ENV_PREFIX: Final = "IBKRFW_IBKR_"
"""Environment variables ``IBKRFW_IBKR_HOST``, ``_PORT``, ``_CLIENT_ID``, ``_ACCOUNT``,
``_MODE``... override the file."""
