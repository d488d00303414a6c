"""Run a strategy live against the fake TWS, one replayed time stamp at a time."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Literal, final

import numpy as np
from typing_extensions import override

from ibkrfw.core.clock import Clock
from ibkrfw.engine.engine import _WAKE, Engine, EngineObserver
from ibkrfw.engine.result import RunResult
from ibkrfw.engine.sleeves import Sleeve
from ibkrfw.errors import EngineError, RequestError
from ibkrfw.model.events import TimerFired
from ibkrfw.model.instruments import Instrument
from ibkrfw.portfolio.portfolio import Ledger
from ibkrfw.ports import Broker
from ibkrfw.risk.monitor import RiskMonitor
from ibkrfw.risk.protect import Protection
from ibkrfw.risk.rule import RiskRule
from ibkrfw.strategy import Strategy
from ibkrfw.testing.faketws.market import Market
from ibkrfw.testing.faketws.server import FakeTWS

if TYPE_CHECKING:
    from ibkrfw.ibkr.broker import IBKRBroker
    from ibkrfw.ibkr.client import IBClient
    from ibkrfw.ibkr.feed import IBKRDataFeed

__all__ = ["LiveSession"]

_REALTIME_BAR = 50  # the message id of realtimeBar
_PLACE_ORDER, _CANCEL_ORDER, _REQ_REAL_TIME_BARS = 3, 4, 50


def _bar_size(tws: FakeTWS) -> str:
    """The size of the bars the fake replays (its history is served at that size)."""
    for arrays in tws.market.arrays.values():
        if len(arrays.ts_ns) > 1:
            spacing_s = int(np.median(np.diff(arrays.ts_ns))) // 1_000_000_000
            return "1d" if spacing_s >= 86_400 else f"{max(spacing_s, 1)}s"
    return "5s"


@final
class _ReplayClock(Clock):
    """The replay's time: the engine's bars, and what the fake TWS replays meanwhile.

    The engine moves it to each bar it handles; between bars it reads the time of the fake's
    replay, so what IB reports while a bar is replayed (fills, and the orders the engine sends
    in answer) is stamped with that bar's time, as a backtest stamps it.
    """

    __slots__ = ("_market", "_now")

    def __init__(self, market: Market) -> None:
        self._market = market
        self._now = 0

    @override
    def now_ns(self) -> int:
        replayed = self._market.clock.now_ns() if self._market.position >= 0 else 0
        return max(self._now, replayed)

    @override
    def advance_to(self, ts_ns: int) -> None:
        """Move to ``ts_ns``; the time read may be later, if the replay is ahead.

        Raises:
            EngineError: if ``ts_ns`` is earlier than the time it was last moved to.
        """
        if ts_ns < self._now:
            raise EngineError(
                f"time cannot go backwards: the clock is at {self._now} ns and was asked to move "
                f"to {ts_ns} ns"
            )
        self._now = ts_ns


@final
class LiveSession:
    """A strategy run by the live engine against a :class:`FakeTWS`, stepped by the caller.

    The strategy runs exactly as it would against TWS: an :class:`~ibkrfw.ibkr.IBKRBroker`
    and an :class:`~ibkrfw.ibkr.IBKRDataFeed` (IB's bars passed through as they come) over a
    real socket, on the engine's own thread, on a clock that follows the replayed bars (what
    IB reports during a bar's replay carries that bar's time, as in a backtest).
    :meth:`step` replays the next time stamps and returns only once the strategy has seen every
    bar they produced and the fake TWS has received every order it sent in response (changes
    to orders IB had not acknowledged yet included), so a test proceeds deterministically, bar
    by bar, as a backtest does. :meth:`stop` first lets the engine take in IB's answers to
    everything it sent. Needs the ``ibkr`` extra (the official ``ibapi`` client).

    A time stamp ends (``on_slice``, the monitors) with its last instrument's bar, within
    :meth:`step`. The replay's clock does not move between steps, so one whose bar of some
    instrument is missing from the replayed data ends when the next step's first bar comes,
    not ``slice_wait_s`` later as on the wall clock: orders its ``on_slice`` sends fill a bar
    later than in the backtest.

    Args:
        strategy: The strategy, or several (as :class:`~ibkrfw.Engine` takes them).
        tws: A started fake TWS.
        instruments: What to subscribe to; every instrument the fake replays by default.
        client_id: The API client id.
        risk_rules: The engine's risk rules.
        risk_monitors: The engine's risk monitors.
        protection: The engine's stop-loss and take-profit keeper.
        observers: Watchers of the run (a :class:`~ibkrfw.monitoring.LiveMonitor`).
        state_dir: Where the broker keeps its order ids (in memory if None).
        broker: Another broker instead of the fake TWS's: a :class:`~ibkrfw.sim.SimBroker`
            makes the sandbox mode (IB's market data, the simulator's fills).
        on_mismatch: The broker's policy when its journal and the account disagree.
        timeout: The longest :meth:`step` and :meth:`start` wait for anything, in seconds.
        quotes: Stream quotes too (``reqMktData``: ``on_quote``, and IB's option model for
            options: :meth:`Context.greeks <ibkrfw.Context.greeks>`).
        depth: Stream market depth of these instruments (or all: True), for ``on_book``.
        portfolio: The engine's ledger (``Engine(..., portfolio=...)``), built with the
            account's cash (the fake's ``tws.market.portfolio.cash``); a
            :class:`~ibkrfw.Portfolio` by default.

    Example:
        >>> from ibkrfw.strategies import MovingAverageCrossover
        >>> with FakeTWS.from_sample(["ACME"]) as tws:
        ...     with LiveSession(MovingAverageCrossover(), tws) as session:
        ...         replayed = session.step(200)
        ...         result = session.stop()
        >>> replayed, len(result.fills) > 0
        (200, True)
    """

    def __init__(
        self,
        strategy: Strategy | Sequence[Strategy | Sleeve] | Mapping[str, Strategy | Sleeve],
        tws: FakeTWS,
        *,
        instruments: Sequence[Instrument] | None = None,
        client_id: int = 1,
        risk_rules: Sequence[RiskRule] = (),
        risk_monitors: Sequence[RiskMonitor] = (),
        protection: Protection | Sequence[Protection] = (),
        observers: Sequence[EngineObserver] = (),
        state_dir: str | os.PathLike[str] | None = None,
        broker: Broker | None = None,
        on_mismatch: Literal["refuse", "adopt"] = "refuse",
        timeout: float = 10.0,
        quotes: bool = False,
        depth: Sequence[Instrument] | bool = False,
        portfolio: Ledger | None = None,
    ) -> None:
        from ibkrfw.ibkr import IBClient, IBKRBroker, IBKRConfig, IBKRDataFeed

        self.tws = tws
        self.timeout = timeout
        self.client_id = client_id
        wanted = list(instruments) if instruments is not None else list(tws.market.arrays)
        config = IBKRConfig(port=tws.port, client_id=client_id, connect_timeout=timeout)
        self.client: IBClient = IBClient(config)
        self.feed: IBKRDataFeed = IBKRDataFeed(
            wanted, client=self.client, bar_size=None, history_bar_size=_bar_size(tws),
            quotes=quotes, depth=depth,
        )  # fmt: skip
        self.broker: Broker = broker or IBKRBroker(
            client=self.client, state_dir=state_dir, on_mismatch=on_mismatch
        )
        self._ib: IBKRBroker | None = self.broker if isinstance(self.broker, IBKRBroker) else None
        # The replay's time, not the wall clock's: the strategy's "now" is its bars' time, as
        # the fake's simulator has it (a live run against TWS uses a LiveClock).
        tws.clock = "replay"  # and its fills carry their bars' times, as in a backtest
        self.engine = Engine(
            strategy,
            self.feed,
            self.broker,
            risk_rules=risk_rules,
            risk_monitors=risk_monitors,
            protection=protection,
            observers=observers,
            clock=_ReplayClock(tws.market),
            tune_gc=False,
            portfolio=portfolio,
        )
        self._thread: threading.Thread | None = None
        self._bars_before = 0
        self._orders_before = (0, 0)
        self._result: RunResult | None = None
        self._error: BaseException | None = None

    def start(self) -> LiveSession:
        """Start the engine and wait until it has subscribed to every instrument.

        Raises:
            EngineError: if the run fails to start in time.
        """
        tws, client_id = self.tws, self.client_id
        # what an earlier connection with this client id exchanged does not count
        before = len(tws.messages("in", client_id=client_id, msg_id=_REQ_REAL_TIME_BARS))
        self._bars_before = len(tws.messages("out", client_id=client_id, msg_id=_REALTIME_BAR))
        self._orders_before = (
            len(tws.messages("in", client_id=client_id, msg_id=_PLACE_ORDER)),
            len(tws.messages("in", client_id=client_id, msg_id=_CANCEL_ORDER)),
        )
        self._thread = threading.Thread(target=self._run, name="ibkrfw-live-session")
        self._thread.start()
        wanted = before + len(self.feed.instruments)

        def subscribed_all() -> bool:
            requests = tws.messages("in", client_id=client_id, msg_id=_REQ_REAL_TIME_BARS)
            return self._error is not None or len(requests) >= wanted

        subscribed = tws.wait_for(subscribed_all, self.timeout)
        try:
            self._raise_failure()
            if not subscribed:
                raise EngineError("the live run did not subscribe to its bars in time")
        except BaseException:
            self._end()  # __exit__ is not called when __enter__ fails: stop the run here
            raise
        return self

    def _end(self) -> None:
        """Stop the engine's thread if it runs (its client would otherwise reconnect on)."""
        if self._thread is not None and self._thread.is_alive():
            self.engine.stop()
            self._thread.join(self.timeout)

    def _run(self) -> None:
        try:
            self._result = self.engine.run()
        except BaseException as exc:  # reported to the test's thread by step() and stop()
            self._error = exc

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise EngineError(f"the live run failed: {self._error!r}") from self._error

    def step(self, count: int = 1) -> int:
        """Replay ``count`` time stamps, each once the strategy is done with the one before.

        Returns:
            How many were replayed (fewer at the end of the data).

        Raises:
            EngineError: if the run failed, or did not keep up within ``timeout``.
        """
        done = 0
        for _ in range(count):
            if not self.tws.step():
                break
            done += 1
            self.settle()
        return done

    def settle(self) -> None:
        """Wait until every bar sent so far has been handled and every order sent has arrived.

        Orders sent include the changes the broker held until IB acknowledged their order.

        Raises:
            EngineError: if the run failed, or did not get there within ``timeout``.
        """
        tws, client_id, feed, engine = self.tws, self.client_id, self.feed, self.engine
        deadline = time.monotonic() + self.timeout
        sent = len(tws.messages("out", client_id=client_id, msg_id=_REALTIME_BAR))
        sent -= self._bars_before
        while feed.received < sent or engine.bars_processed < feed.emitted:
            self._raise_failure()
            if time.monotonic() > deadline:
                raise EngineError(
                    f"the strategy did not keep up: {engine.bars_processed} of {sent} bars "
                    f"handled after {self.timeout:g} s"
                )
            time.sleep(0.0002)
        counts = self.client.sent_counts
        ib = self._ib

        def arrived() -> bool:
            placed = len(tws.messages("in", client_id=client_id, msg_id=_PLACE_ORDER))
            cancels = len(tws.messages("in", client_id=client_id, msg_id=_CANCEL_ORDER))
            placed -= self._orders_before[0]
            cancels -= self._orders_before[1]
            return placed >= counts["placeOrder"] and cancels >= counts["cancelOrder"]

        while True:
            before = (counts["placeOrder"], counts["cancelOrder"])
            if not tws.wait_for(arrived, max(0.0, deadline - time.monotonic())):
                raise EngineError("the fake TWS did not receive the orders in time")
            # IB's acknowledgements release the changes held for them: those go out too
            while ib is not None and ib.changes_waiting:
                if time.monotonic() > deadline:
                    raise EngineError("order changes still wait for IB's acknowledgement")
                time.sleep(0.0002)
            if (counts["placeOrder"], counts["cancelOrder"]) == before:
                return

    def _take_in_answers(self) -> None:
        """Let the engine take in every answer IB sent so far (best effort: before a stop)."""
        if self._thread is None or not self._thread.is_alive() or self._error is not None:
            return
        self.settle()
        # TWS answers in order: once a request's reply is in, so is everything sent before it
        instrument = self.feed.instruments[0] if self.feed.instruments else None
        if instrument is not None and self.client.is_connected:
            from ibkrfw.ibkr.translate import to_ib_contract

            try:
                self.client.request(
                    "reqContractDetails",
                    to_ib_contract(instrument),
                    rows="contractDetails",
                    timeout=self.timeout,
                )
            except RequestError:
                return
        # ...and once the engine took this marker off its inbox, it handled all before it
        inbox = self.engine.inbox
        inbox.put(TimerFired(ts_ns=0, name=_WAKE))
        deadline = time.monotonic() + self.timeout
        while inbox and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.0002)

    def stop(self, *, cancel_orders: bool = False) -> RunResult:
        """End the run, once the engine has IB's answers to what it sent, and return its result.

        Raises:
            EngineError: if the run failed or did not end within ``timeout``.
        """
        try:
            self._take_in_answers()
        finally:
            self.engine.stop(cancel_orders=cancel_orders)
        if self._thread is not None:
            self._thread.join(self.timeout)
            if self._thread.is_alive():
                raise EngineError("the live run did not stop in time")
        self._raise_failure()
        if self._result is None:
            raise EngineError("the live run was not started")
        return self._result

    def __enter__(self) -> LiveSession:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._end()
