from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibkrfw import ConfigError
from ibkrfw.ibkr.pacing import HistoryPacer, HistoryRequest, MessageRate


def _req(
    contract: str = "1", what: str = "TRADES", end: str = "", exchange: str = "SMART"
) -> HistoryRequest:
    return HistoryRequest(contract, exchange, what, "1 min", end, "1 D")


def test_identical_requests_wait_15_seconds() -> None:
    pacer = HistoryPacer()
    pacer.sent(_req(), 100.0)
    assert pacer.delay(_req(), 105.0) == pytest.approx(10.0, abs=1e-5)
    assert pacer.delay(_req(end="20240102 16:00:00"), 105.0) == 0.0  # not identical
    assert pacer.delay(_req(), 115.0) == 0.0


def test_six_for_one_contract_in_two_seconds_is_a_violation() -> None:
    pacer = HistoryPacer()
    for i in range(5):
        assert pacer.delay(_req(end=str(i)), 10.0 + i * 0.1) == 0.0
        pacer.sent(_req(end=str(i)), 10.0 + i * 0.1)
    # the first leaves the 2 s window at 12.0
    assert pacer.delay(_req(end="5"), 10.5) == pytest.approx(1.5, abs=1e-5)
    assert pacer.delay(_req(contract="2", end="5"), 10.5) == 0.0  # another contract
    assert pacer.delay(_req(what="MIDPOINT", end="5"), 10.5) == 0.0  # another tick type


def test_bid_ask_counts_double() -> None:
    pacer = HistoryPacer()
    for i in range(2):
        pacer.sent(_req(what="BID_ASK", end=str(i)), 0.0)  # weight 4 in all
    assert pacer.delay(_req(what="BID_ASK", end="x"), 0.5) == pytest.approx(1.5, abs=1e-5)  # 6 > 5
    pacer2 = HistoryPacer()
    pacer2.sent(_req(what="BID_ASK"), 0.0)
    assert pacer2.delay(_req(what="BID_ASK", end="y"), 0.1) == 0.0  # 4 <= 5


def test_sixty_in_ten_minutes_and_fifty_open() -> None:
    pacer = HistoryPacer(open_max=100)
    for i in range(60):
        pacer.sent(_req(contract=str(i)), float(i))
    # until the first is 600 s old
    assert pacer.delay(_req(contract="new"), 60.0) == pytest.approx(540.0, abs=1e-5)
    capped = HistoryPacer(open_max=2)
    capped.sent(_req(contract="a"), 0.0)
    capped.sent(_req(contract="b"), 0.0)
    assert math.isinf(capped.delay(_req(contract="c"), 100.0))
    capped.finished()
    assert capped.delay(_req(contract="c"), 100.0) == 0.0


def test_the_message_rate() -> None:
    rate = MessageRate(45)
    for i in range(45):
        assert rate.delay(i / 100) == 0.0
        rate.sent(i / 100)
    assert rate.delay(0.45) == pytest.approx(0.55, abs=1e-5)  # until the first is a second old
    assert rate.delay(1.0) == 0.0
    with pytest.raises(ConfigError):
        MessageRate(60)
    with pytest.raises(ConfigError):
        HistoryPacer(window_max=0)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["A", "B"]),
            st.sampled_from(["TRADES", "BID_ASK"]),
            st.sampled_from(["e1", "e2", "e3"]),
            st.floats(0, 3),
        ),
        max_size=40,
    )
)
def test_sending_at_the_delay_never_breaks_a_rule(
    requests: list[tuple[str, str, str, float]],
) -> None:
    pacer = HistoryPacer(window_max=12, window_s=30.0)
    now = 0.0
    log: list[tuple[float, HistoryRequest]] = []
    for contract, what, end, gap in requests:
        request = _req(contract, what, end)
        now += gap
        now += pacer.delay(request, now)
        pacer.sent(request, now)
        pacer.finished()
        log.append((now, request))
    for i, (at, request) in enumerate(log):
        before = log[:i]
        assert all(at - t >= 15.0 - 1e-9 for t, r in before if r == request)
        same = sum(
            HistoryPacer.weight(r)
            for t, r in log[: i + 1]
            if at - t < 2.0
            and (r.contract, r.what_to_show) == (request.contract, request.what_to_show)
        )
        assert same <= 5
        assert sum(HistoryPacer.weight(r) for t, r in log[: i + 1] if at - t < 30.0) <= 12


class _Client:
    """A client whose requests either never go out, or go out and bring no bars."""

    def __init__(self, sent: bool) -> None:
        from ibkrfw.ibkr.connection import ConnectionMonitor

        self.sent = sent
        self.monitor = ConnectionMonitor()
        self.monitor.socket_connected()
        self.monitor.api_ready()

    def request(self, *args: object, on_sent: Any = None, **kwargs: object) -> list[object]:
        from ibkrfw import RequestError

        if not self.sent:  # the socket went away between the check and the send
            raise RequestError("reqHistoricalData: not connected", code=None)
        on_sent()
        return []


_JAN_2024 = (1_704_067_200 * 10**9, 1_704_412_800 * 10**9)


def test_a_request_that_was_never_sent_leaves_a_shared_pacer_as_it_was(tmp_path: Path) -> None:
    from ibkrfw import RequestError, Stock
    from ibkrfw.data import SQLiteBarStore
    from ibkrfw.ibkr.download import HistoryDownloader

    pacer = HistoryPacer(open_max=2)
    pacer.sent(_req(contract="other"), 0.0)  # another download's request, still open
    with SQLiteBarStore(tmp_path / "bars.db") as store:
        downloader = HistoryDownloader(_Client(sent=False), store, pacer=pacer, max_retries=0)  # type: ignore[arg-type]
        with pytest.raises(RequestError, match="not connected"):
            downloader.download(Stock("ACME"), "1d", *_JAN_2024)
    pacer.sent(_req(contract="third"), 100.0)
    assert math.isinf(pacer.delay(_req(contract="new"), 100.0))  # the other is still open


def test_a_download_waits_for_a_shared_pacers_open_requests(tmp_path: Path) -> None:
    import threading
    import time

    from ibkrfw import Stock
    from ibkrfw.data import SQLiteBarStore
    from ibkrfw.ibkr.download import HistoryDownloader

    pacer = HistoryPacer(open_max=1)
    pacer.sent(_req(contract="other"), 0.0)  # the limit is reached by another download
    answered = threading.Timer(0.3, pacer.finished)
    answered.start()
    began = time.monotonic()
    with SQLiteBarStore(tmp_path / "bars.db") as store:
        downloader = HistoryDownloader(_Client(sent=True), store, pacer=pacer)  # type: ignore[arg-type]
        report = downloader.download(Stock("ACME"), "1d", *_JAN_2024)
    answered.join()
    assert report.chunks == 1 and report.retries == 0
    assert 0.3 <= time.monotonic() - began < 5  # it waited for the other, then went on
