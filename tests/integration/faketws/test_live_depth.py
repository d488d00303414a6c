"""Live market depth: IBKRDataFeed(depth=...) against the fake TWS, over a real socket.

The strategy sees each change of the book in ``on_book`` and reads it with ``ctx.book``; the
book equals the one the fake has sent. Too many depth subscriptions are refused before
connecting; the depth is subscribed again after a dropped connection; a malformed row or IB's
error 317 is reported as a DataProblem and the book rebuilt from a fresh snapshot.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ibkrfw import (
    BookSnapshot,
    ConfigError,
    Context,
    DataProblem,
    DepthBook,
    Engine,
    Event,
    Stock,
    Strategy,
)
from ibkrfw.ibkr import Backoff, IBClient, IBKRBroker, IBKRConfig, IBKRDataFeed
from ibkrfw.testing import bars_frame
from ibkrfw.testing.faketws import FakeTWS

WAIT = 10.0
REQ_MKT_DEPTH, CANCEL_MKT_DEPTH = 10, 11
ACME, BOLT = Stock("ACME"), Stock("BOLT")
BARS = bars_frame(
    [(100, 101, 99, 100.5, 400), (100.5, 102, 100, 101.5, 800), (101.5, 102, 100.5, 101, 400),
     (101, 103, 100.5, 102.5, 500), (102.5, 103, 101, 101.2, 300)],
    start="2024-01-02 14:30",
    freq="1min",
)  # fmt: skip


def until(condition: Any, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


class Watch(Strategy):
    """Records the books it is shown, what ctx.book says, and the events."""

    def __init__(self) -> None:
        self.books: list[BookSnapshot] = []
        self.same: list[bool] = []  # ctx.book(...) is the book on_book got
        self.events: list[Event] = []

    def on_book(self, ctx: Context, book: DepthBook) -> None:
        self.books.append(book.snapshot())
        self.same.append(ctx.book(book.instrument) is book and book.state == "ok")

    def on_event(self, ctx: Context, event: Event) -> None:
        self.events.append(event)


class Run:
    """An engine on its own thread with an IBKRDataFeed streaming depth from the fake."""

    def __init__(self, tws: FakeTWS, **feed_options: Any) -> None:
        self.tws = tws
        self.client = IBClient(IBKRConfig(port=tws.port))
        self.client.backoff = Backoff(base=0.05, cap=0.2, seed=1)
        self.feed = IBKRDataFeed([ACME], client=self.client, bar_size=None, **feed_options)
        self.strategy = Watch()
        self.engine = Engine(self.strategy, self.feed, IBKRBroker(client=self.client),
                             tune_gc=False)  # fmt: skip
        self.thread = threading.Thread(target=self.engine.run)

    def __enter__(self) -> Run:
        self.thread.start()
        assert until(lambda: self.depth_requests() == 1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine.stop()
        self.thread.join(WAIT)

    def depth_requests(self) -> int:
        return len(self.tws.messages("in", client_id=1, msg_id=REQ_MKT_DEPTH))

    def stream(self) -> int:
        """The request id of the latest reqMktDepth."""
        return int(self.tws.messages("in", client_id=1, msg_id=REQ_MKT_DEPTH)[-1].fields[2])

    def fakes_book(self) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """The fake's book on the latest subscription: bids, asks (price, size), best first."""
        with self.tws.market.lock:
            entry = self.tws._market_data._depth.get((1, self.stream()))
            if entry is None:
                return [], []
            sent = entry[-1]
            return ([(p, float(s)) for p, s in sent[1]], [(p, float(s)) for p, s in sent[0]])

    def shown(self) -> tuple[list[tuple[float, float]], list[tuple[float, float]]] | None:
        """The last book the strategy was shown, as the fake's."""
        if not self.strategy.books:
            return None
        last = self.strategy.books[-1]
        return [(lv.price, lv.size) for lv in last.bids], [(lv.price, lv.size) for lv in last.asks]

    def in_step(self) -> bool:
        """The strategy's last book is the fake's, and it was sound and ctx.book's."""
        want = self.fakes_book()
        return bool(want[0]) and self.shown() == want and all(self.strategy.same)

    def problems(self) -> list[DataProblem]:
        return [e for e in self.strategy.events if isinstance(e, DataProblem)]


@pytest.fixture
def tws() -> Iterator[FakeTWS]:
    with FakeTWS(data={ACME: BARS}) as made:
        yield made


@pytest.mark.parametrize("smart", [False, True])
def test_live_depth_on_book_and_ctx_book_equal_the_fakes_book(tws: FakeTWS, smart: bool) -> None:
    with Run(tws, depth=True, depth_rows=5, smart_depth=smart) as run:
        request = tws.messages("in", client_id=1, msg_id=REQ_MKT_DEPTH)[0].fields
        assert list(request[15:17]) == ["5", "1" if smart else "0"]  # numRows, isSmartDepth
        for _ in range(3):
            tws.step()
            assert until(run.in_step), (run.shown(), run.fakes_book())
        book = run.feed.depth_book(ACME)
        assert book is not None and len(book.levels()[0]) == 5
        assert book.best_bid is not None and book.best_ask is not None
        assert book.best_bid < book.best_ask
        if smart:
            assert {lv.market_maker for lv in book.levels()[1]} != {""}
    assert not run.problems()
    assert run.feed.depth_updates > 0 and run.feed.depth_refreshes == 0
    # a burst is one change: the strategy is not shown the book half-way through one
    assert len(run.strategy.books) < run.feed.depth_updates


def test_live_depth_too_many_subscriptions_are_refused_before_connecting() -> None:
    stocks = [Stock(s) for s in ("A", "B", "C", "D")]
    config = IBKRConfig(port=1)  # nothing listens there: a connection attempt would fail
    with pytest.raises(ConfigError, match=r"4 market depth subscriptions .* 3 simultaneous"):
        IBKRDataFeed(stocks, config, depth=True)
    with pytest.raises(ConfigError, match=r"2 market depth .* 1 simultaneous"):
        IBKRDataFeed(stocks, config, depth=stocks[:2], max_depth_lines=1)
    feed = IBKRDataFeed(stocks, config, depth=stocks[:3])
    assert feed.depth_instruments == tuple(stocks[:3])
    assert IBKRDataFeed(stocks, config, depth=True, max_depth_lines=4).depth_instruments


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"depth": [BOLT]}, "depth instrument BOLT.SMART is not one of the feed's instruments"),
        ({"depth": "ACME"}, "depth must be True, False or a list of instruments"),
        ({"depth": ["ACME"]}, "depth must list instruments, got 'ACME'"),
        ({"depth": True, "depth_rows": 0}, "depth_rows must be a whole number >= 1"),
        ({"depth": True, "smart_depth": 1}, "smart_depth must be True or False"),
        ({"depth": True, "max_depth_lines": -1}, "max_depth_lines must be a whole number"),
        ({"depth": [ACME, ACME]}, "depth lists an instrument twice"),
    ],
)
def test_live_depth_bad_options_are_config_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        IBKRDataFeed([ACME], IBKRConfig(port=1), **options)


def test_live_depth_is_subscribed_again_after_a_dropped_connection(tws: FakeTWS) -> None:
    with Run(tws, depth=[ACME]) as run:
        run.client.backoff = Backoff(base=1.0, cap=1.0, seed=1)  # time to see the book stale
        tws.step()
        assert until(run.in_step)
        book = run.feed.depth_book(ACME)
        assert book is not None
        tws.drop_connections()
        assert until(lambda: book.state == "stale")  # not the old book while disconnected
        assert book.best_bid is None and "connection to IB was lost" in str(book.problem)
        assert until(lambda: run.depth_requests() == 2)  # reqMktDepth (10) sent again
        tws.step()
        assert until(run.in_step), (run.shown(), run.fakes_book())
    assert not run.problems()


def test_live_depth_a_malformed_row_is_reported_and_the_book_rebuilt(tws: FakeTWS) -> None:
    with Run(tws, depth=True) as run:
        tws.step()
        assert until(run.in_step)
        first = run.stream()
        tws.corrupt_next_depth(size=-5)
        tws.step()
        assert until(lambda: run.depth_requests() == 2)  # subscribed again: a fresh snapshot
        cancelled = tws.messages("in", client_id=1, msg_id=CANCEL_MKT_DEPTH)
        assert [int(m.fields[2]) for m in cancelled] == [first]
        assert until(run.in_step), (run.shown(), run.fakes_book())
        tws.step()  # and it goes on following the market
        assert until(run.in_step), (run.shown(), run.fakes_book())
    problems = run.problems()
    assert len(problems) == 1  # once, not once per row that followed
    assert problems[0].instrument == ACME and "size -5.0" in problems[0].reason
    assert "rebuilt from a fresh snapshot" in problems[0].reason
    assert run.feed.depth_refreshes == 1


def test_live_depth_a_gap_is_reported_and_the_book_rebuilt(tws: FakeTWS) -> None:
    with Run(tws, depth=True) as run:
        tws.step()
        assert until(run.in_step)
        tws.corrupt_next_depth(position=20, operation=0)  # an insert beyond the book
        tws.step()
        assert until(lambda: run.depth_requests() == 2)
        assert until(run.in_step), (run.shown(), run.fakes_book())
    [problem] = run.problems()
    assert "beyond the book" in problem.reason


def test_live_depth_error_317_resets_the_book_and_subscribes_again(tws: FakeTWS) -> None:
    with Run(tws, depth=True) as run:
        tws.step()
        assert until(run.in_step)
        text = "Market depth data has been RESET. Please empty deep book contents"
        tws.send_error(317, text, req_id=run.stream())
        assert until(lambda: run.depth_requests() == 2)
        assert until(run.in_step), (run.shown(), run.fakes_book())
    [problem] = run.problems()
    assert problem.code == 317 and problem.instrument == ACME and "RESET" in problem.reason


@pytest.mark.parametrize("code", [309, 10092])
def test_live_depth_refused_by_ib_reaches_the_strategy(tws: FakeTWS, code: int) -> None:
    with Run(tws, depth=True) as run:
        tws.send_error(code, "Max number (3) of market depth requests has been reached",
                       req_id=run.stream())  # fmt: skip
        assert until(lambda: run.problems())
        tws.step()
        time.sleep(0.2)
    [problem] = run.problems()
    assert problem.code == code and problem.instrument == ACME
    assert run.depth_requests() == 1  # not asked again: IB said no


def test_live_depth_is_recorded_and_a_backtest_replays_the_same_book(
    tws: FakeTWS, tmp_path: Any
) -> None:
    """record_depth keeps every row; the replay of the recording ends on the fake's book."""
    from ibkrfw.data import DepthStore

    store = DepthStore(tmp_path / "depth")
    with Run(tws, depth=True, record_depth=store, record_every_s=0.05) as run:
        for _ in range(3):
            tws.step()
            assert until(run.in_step), (run.shown(), run.fakes_book())
        want = run.fakes_book()
    assert run.feed.recorded == run.feed.depth_updates > 0  # the rest written at close
    replay = store.feed(ACME, group_ns=50_000_000)
    bars = list(replay)
    assert bars, "the replay yields a bar at each sound time stamp"
    book = replay.depth_book(ACME)
    assert book is not None
    bids, asks = book.levels()
    assert ([(lv.price, lv.size) for lv in bids], [(lv.price, lv.size) for lv in asks]) == want


def test_recording_needs_depth_and_a_store(tmp_path: Any) -> None:
    from ibkrfw.data import DepthStore

    client = IBClient(IBKRConfig(port=1))
    with pytest.raises(ConfigError, match="records market depth: give depth= too"):
        IBKRDataFeed([ACME], client=client, record_depth=DepthStore(tmp_path))
    with pytest.raises(ConfigError, match="give a DepthStore"):
        IBKRDataFeed([ACME], client=client, depth=True, record_depth="depth/")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="record_every_s=0"):
        IBKRDataFeed([ACME], client=client, depth=True, record_every_s=0)


def test_a_recording_that_cannot_be_written_stops_not_the_run(
    tws: FakeTWS, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ibkrfw.data import DepthStore

    store = DepthStore(tmp_path / "depth")

    def full(rows: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "write", full)
    with Run(tws, depth=True, record_depth=store, record_every_s=0.01) as run:
        for _ in range(3):
            tws.step()
            assert until(run.in_step)
            time.sleep(0.05)  # the next burst comes after record_every_s: a write is due
        assert until(lambda: bool(run.problems()))
        assert run.engine.stop_reason is None  # still running
    [problem] = run.problems()
    assert "recording market depth stopped: OSError" in problem.reason
    assert run.feed.record_depth is None and run.feed.recorded == 0
