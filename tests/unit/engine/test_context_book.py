"""Context.book and Strategy.on_book: the feeds' depth books, in a backtest and not."""

from __future__ import annotations

import pandas as pd
import pytest

from ibkrfw import (
    BookSide,
    ConfigError,
    Context,
    DataProblem,
    DepthBook,
    DepthOperation,
    DepthReceived,
    DepthUpdate,
    Engine,
    Stock,
    Strategy,
)
from ibkrfw.data import sample_feed
from ibkrfw.sim import DepthFeed, SimBroker

ACME = Stock("ACME")
T0 = int(pd.Timestamp("2024-01-02 14:30", tz="UTC").value)
S = 10**9


def snapshot(ts: int, bid: float, ask: float, op: DepthOperation) -> list[DepthUpdate]:
    rows = []
    for k in range(3):
        size = 100.0 * (k + 1)
        rows.append(DepthUpdate(ACME, ts, BookSide.BID, k, op, round(bid - k * 0.01, 2), size))
        rows.append(DepthUpdate(ACME, ts, BookSide.ASK, k, op, round(ask + k * 0.01, 2), size))
    return rows


def test_context_book_in_a_backtest_on_a_depth_feed_is_the_replayed_book() -> None:
    seen: list[tuple[float | None, float | None, bool]] = []

    class Reads(Strategy):
        def on_bar(self, ctx, bar):  # type: ignore[no-untyped-def]
            book = ctx.book(ACME)
            seen.append((book.best_bid, book.best_ask, book is feed.depth_book(ACME)))

    rows = snapshot(T0, 10.00, 10.02, DepthOperation.INSERT)
    rows += snapshot(T0 + S, 10.01, 10.03, DepthOperation.UPDATE)
    feed = DepthFeed(rows, max_levels=3)
    Engine(Reads(), feed, SimBroker(100_000)).run()
    assert seen == [(10.0, 10.02, True), (10.01, 10.03, True)]


def test_context_book_is_none_without_depth_and_refuses_unknown_instruments() -> None:
    answers: list[object] = []

    class Asks(Strategy):
        def on_start(self, ctx: Context) -> None:
            answers.append(ctx.book(ctx.instruments[0]))
            for wrong in (Stock("NOPE"), "ACME"):
                with pytest.raises(ConfigError, match="no feed delivers"):
                    ctx.book(wrong)  # type: ignore[arg-type]
            answers.append("refused")

    Engine(Asks(), sample_feed(["ACME"]), SimBroker(100_000)).run()
    assert answers == [None, "refused"]


def test_data_feed_depth_hooks_do_nothing_by_default() -> None:
    feed = sample_feed(["ACME"])
    assert feed.depth_book(ACME) is None
    event = DepthReceived(ts_ns=0, instrument=ACME, updates=(), stream=1)
    assert feed.on_depth(event) is None


def test_engine_hands_depth_to_its_feed_and_the_book_to_on_book() -> None:
    """A feed's on_depth answer: a book goes to on_book, a problem to on_event and notices."""
    book = DepthBook(ACME, max_levels=3)
    problem = DataProblem(ts_ns=T0, instrument=ACME, code=None, reason="bad row")
    answers: list[DepthBook | DataProblem | None] = [book, problem, None]
    heard: list[object] = []

    class Answering(DepthFeed):
        def on_depth(self, event: DepthReceived) -> DepthBook | DataProblem | None:
            return answers.pop(0)

    class Listens(Strategy):
        def on_start(self, ctx: Context) -> None:
            for _ in range(3):
                engine._dispatch(DepthReceived(ts_ns=T0, instrument=ACME, updates=(), stream=1))

        def on_book(self, ctx: Context, got: DepthBook) -> None:
            heard.append(got)

        def on_event(self, ctx, event):  # type: ignore[no-untyped-def]
            heard.append(event)

    feed = Answering(snapshot(T0, 10.0, 10.02, DepthOperation.INSERT), max_levels=3)
    engine = Engine(Listens(), feed, SimBroker(100_000))
    engine.run()
    assert heard == [book, problem] and problem in engine.notices
