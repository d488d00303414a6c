"""A public test kit: build bars by hand and script a strategy to see what the engine does.

Example:
    >>> from ibkrfw import Engine, Stock
    >>> from ibkrfw.sim import DataFrameFeed, SimBroker
    >>> from ibkrfw.testing import ScriptedStrategy, bars_frame
    >>> aapl = Stock("AAPL")
    >>> frame = bars_frame([(10, 11, 9, 10.5), (10.6, 12, 10, 11), (11, 11.5, 10.5, 11.2)])
    >>> script = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(bar.instrument, 10)})
    >>> result = Engine(script, DataFrameFeed(frame, aapl), SimBroker()).run()
    >>> [(str(f.price), str(f.quantity)) for f in result.fill_list]  # next bar's open
    [('10.60', '10')]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import final

import pandas as pd
from typing_extensions import override

from ibkrfw.model.data import Bar
from ibkrfw.model.events import OrderEvent, TimerFired
from ibkrfw.model.fills import Fill
from ibkrfw.model.orders import Order
from ibkrfw.monitoring.alerts import Alert, Channel
from ibkrfw.strategy import Context, Strategy
from ibkrfw.testing.broker import RecordingBroker
from ibkrfw.testing.faketws import FakeTWS, Recorded
from ibkrfw.testing.live import LiveSession

__all__ = [
    "Action",
    "FakeTWS",
    "LiveSession",
    "Recorded",
    "RecordingBroker",
    "RecordingChannel",
    "ScriptedStrategy",
    "bars_frame",
]

Action = Callable[[Context, Bar], object]
"""The type of an action, a callable taking the context and the bar."""


@final
class RecordingChannel(Channel):
    """An alert channel that keeps what it is sent, to test which alerts a run raises.

    Example:
        >>> from ibkrfw.monitoring import Alert, Alerter
        >>> inbox = RecordingChannel()
        >>> alerter = Alerter([inbox]).start()
        >>> alerter.send(Alert("order_rejected", "order 7 rejected", "201: no margin"))
        >>> alerter.stop()
        >>> [(a.kind, a.title) for a in inbox.alerts]
        [('order_rejected', 'order 7 rejected')]
    """

    name = "recording"

    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        """What was sent, oldest first."""

    @override
    def send(self, alert: Alert) -> None:
        """Keep ``alert``."""
        self.alerts.append(alert)


def bars_frame(
    rows: Sequence[tuple[float, float, float, float] | tuple[float, float, float, float, float]],
    *,
    start: str = "2024-01-02",
    freq: str = "1D",
    tz: str = "UTC",
    volume: float = 1_000.0,
) -> pd.DataFrame:
    """Build an OHLCV frame from ``(open, high, low, close[, volume])`` rows.

    Args:
        rows: One tuple per bar.
        start: Time of the first bar.
        freq: Spacing of the bars (a pandas frequency).
        tz: Time zone of the index.
        volume: Volume of rows that give none.
    """
    index = pd.date_range(start=start, periods=len(rows), freq=freq, tz=tz, name="timestamp")
    data = [(*row, volume) if len(row) == 4 else row for row in rows]
    return pd.DataFrame(data, index=index, columns=["open", "high", "low", "close", "volume"])


@final
class ScriptedStrategy(Strategy):
    """Run given actions on given bars and record everything the engine delivers.

    Args:
        actions: What to do on the bar of each position (0 = first bar seen by ``on_bar``).
        on_stop: What to do in :meth:`on_stop`.

    Attributes:
        bars: Every bar seen, in order.
        events: ``(order, event)`` for every order event, in order.
        fills: Every fill, in order.
        timers: Every timer event.
        slices: The bars of each ``on_slice`` call.
    """

    def __init__(
        self,
        actions: Mapping[int, Action] | None = None,
        on_stop: Callable[[Context], object] | None = None,
    ) -> None:
        self.actions = dict(actions or {})
        self._on_stop = on_stop
        self.bars: list[Bar] = []
        self.events: list[tuple[Order, OrderEvent]] = []
        self.fills: list[Fill] = []
        self.timers: list[TimerFired] = []
        self.slices: list[list[Bar]] = []

    @override
    def on_bar(self, ctx: Context, bar: Bar) -> None:
        action = self.actions.get(len(self.bars))
        self.bars.append(bar)
        if action is not None:
            action(ctx, bar)

    @override
    def on_slice(self, ctx: Context, bars: Sequence[Bar]) -> None:
        self.slices.append(list(bars))

    @override
    def on_order(self, ctx: Context, order: Order, event: OrderEvent) -> None:
        self.events.append((order, event))

    @override
    def on_fill(self, ctx: Context, fill: Fill) -> None:
        self.fills.append(fill)

    @override
    def on_timer(self, ctx: Context, timer: TimerFired) -> None:
        self.timers.append(timer)

    @override
    def on_stop(self, ctx: Context) -> None:
        if self._on_stop is not None:
            self._on_stop(ctx)

    def event_types(self) -> list[str]:
        """Return the class names of the order events received, in order."""
        return [type(event).__name__ for _, event in self.events]
