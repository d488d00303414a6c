"""Mean reversion: buy what has fallen far below its average, sell what has risen far above."""

from __future__ import annotations

from typing import Literal, final

import attrs
from typing_extensions import override

from ibkrfw.errors import ConfigError
from ibkrfw.indicators.core import Indicator
from ibkrfw.indicators.technical import BollingerBands, ZScore
from ibkrfw.model.data import Bar
from ibkrfw.model.instruments import Instrument
from ibkrfw.strategies._params import int_at_least, optional_fraction
from ibkrfw.strategy import Context, Strategy

__all__ = ["MeanReversion"]


@final
@attrs.define
class MeanReversion(Strategy):
    """Enter when the price is far from its moving average; exit when it has come back.

    With ``signal="zscore"`` the distance is the rolling z-score (how many standard deviations
    the close is from its ``period``-bar average): enter long below ``-entry``, short above
    ``+entry`` (unless ``long_only``), and exit once the z-score is back within ``exit``. With
    ``signal="bollinger"`` the same with the bands: enter when the close is outside the
    ``entry``-deviation bands, exit when it crosses the middle line (the moving average).
    ``max_bars`` closes a position held that long, whatever the signal.

    Each instrument is traded on its own with an equal share of equity, unless ``weight`` says.

    Args:
        period: The window of the average and the deviation.
        entry: How many deviations away to enter.
        exit: How close (in deviations) to exit; 0 exits at the average.
        signal: ``"zscore"`` or ``"bollinger"``.
        long_only: Trade only from the long side.
        max_bars: Close a position after this many bars (None: no limit).
        weight: The share of equity per position; ``1 / number of instruments`` if None.

    Raises:
        ConfigError: if ``entry`` is not above ``exit`` or a setting is out of range.

    Example:
        >>> from ibkrfw import Engine
        >>> from ibkrfw.data import sample_feed
        >>> from ibkrfw.sim import SimBroker
        >>> result = Engine(MeanReversion(period=20, entry=2.0), sample_feed(["ACME"]),
        ...                 SimBroker()).run()
        >>> int(result.stats["Trades"]) > 0
        True
    """

    period: int = attrs.field(default=20, validator=int_at_least(2))
    entry: float = 2.0
    exit: float = 0.0
    signal: Literal["zscore", "bollinger"] = "zscore"
    long_only: bool = False
    max_bars: int | None = None
    weight: float | None = attrs.field(default=None, validator=optional_fraction)
    _held_since: dict[Instrument, int] = attrs.field(factory=dict, init=False, repr=False)
    _share: float = attrs.field(default=1.0, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not (isinstance(self.entry, int | float) and isinstance(self.exit, int | float)):
            raise ConfigError("entry and exit must be numbers")
        if not 0 <= self.exit < self.entry:
            raise ConfigError(f"need 0 <= exit < entry, got exit={self.exit}, entry={self.entry}")
        if self.signal not in ("zscore", "bollinger"):
            raise ConfigError(f"signal must be 'zscore' or 'bollinger', got {self.signal!r}")
        if self.max_bars is not None and not (
            isinstance(self.max_bars, int) and self.max_bars >= 1
        ):
            raise ConfigError(f"max_bars must be a positive int, got {self.max_bars!r}")

    @override
    def indicators(self) -> dict[str, Indicator]:
        """The z-score or the bands, over ``period`` bars."""
        if self.signal == "zscore":
            return {"signal": ZScore(self.period)}
        return {"signal": BollingerBands(self.period, self.entry)}

    @override
    def on_start(self, ctx: Context) -> None:
        self._held_since = {}
        self._share = self.weight if self.weight is not None else 1.0 / len(ctx.instruments)

    def _distance(self, ind: Indicator, close: float) -> float:
        """How far the close is from the average, in deviations (as the z-score)."""
        if isinstance(ind, BollingerBands):
            half = (ind.upper - ind.value) / self.entry
            return (close - ind.value) / half if half > 0 else 0.0
        return ind.value

    @override
    def on_bar(self, ctx: Context, bar: Bar) -> None:
        inst = bar.instrument
        ind = ctx.indicator(inst, "signal")
        if not ind.ready:
            return
        z = self._distance(ind, bar.close)
        held = ctx.position(inst).quantity
        if held:
            since = self._held_since.setdefault(inst, len(ctx.history(inst)))
            timed_out = (
                self.max_bars is not None and len(ctx.history(inst)) - since >= self.max_bars
            )
            back = z >= -self.exit if held > 0 else z <= self.exit
            if back or timed_out:
                ctx.order_target_percent(inst, 0.0, tag="exit" if back else "time-exit")
                self._held_since.pop(inst, None)
            return
        if ctx.open_orders(inst):
            return  # an entry is on its way
        if z < -self.entry:
            ctx.order_target_percent(inst, self._share, tag="entry")
        elif z > self.entry and not self.long_only:
            ctx.order_target_percent(inst, -self._share, tag="entry")
