"""Historical downloads from IB into a BarStore: chunked, paced, retried, resumable."""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, final

import numpy as np

from ibkrfw._progress import check as check_progress
from ibkrfw._progress import make_bar
from ibkrfw.data.barsize import normalize_bar_size
from ibkrfw.data.store import BarStore
from ibkrfw.errors import ConfigError, RequestError
from ibkrfw.ibkr.client import IBClient
from ibkrfw.ibkr.connection import Backoff, ConnectionState, Farm
from ibkrfw.ibkr.feed import IBKRDataFeed
from ibkrfw.ibkr.history import HistoryChunk, history_chunks, ib_bar_size
from ibkrfw.ibkr.pacing import HistoryPacer, HistoryRequest
from ibkrfw.ibkr.translate import to_ib_contract
from ibkrfw.model.instruments import Instrument

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DownloadProgress", "DownloadReport", "HistoryDownloader"]

log = logging.getLogger("ibkrfw.ibkr")


class DownloadProgress(NamedTuple):
    """Where a download stands, after each chunk."""

    instrument: Instrument
    bar_size: str
    done: int
    """Chunks finished (downloaded, empty or skipped as already stored)."""
    total: int
    """Chunks in all."""
    bars: int
    """Bars written so far."""


class DownloadReport(NamedTuple):
    """What a download did."""

    instrument: Instrument
    bar_size: str
    chunks: int
    """Chunks in the range."""
    skipped: int
    """Chunks already in the store (a resumed download)."""
    bars: int
    """Bars written."""
    retries: int
    """Requests sent again after a pacing violation (162) or a timeout."""


def _is_pacing(error: RequestError) -> bool:
    text = str(error).lower()
    return error.code == 162 and "pacing" in text


def _is_no_data(error: RequestError) -> bool:
    text = str(error).lower()
    return error.code == 162 and "no data" in text


@final
class HistoryDownloader:
    """Download bars from IB into a :class:`~ibkrfw.data.BarStore`, within IB's rules.

    A range is split into requests IB accepts for the bar size
    (:func:`~ibkrfw.ibkr.history_chunks`), newest first. Each request waits as long as
    :class:`~ibkrfw.ibkr.HistoryPacer` requires (no identical request within 15 s, fewer than
    6 for one contract in 2 s, at most 60 per 10 minutes), has a timeout, and is sent again
    after a pacing violation (162) or a timeout, with backoff, up to ``max_retries`` times.
    Each chunk is written to the store as soon as it arrives, so an interrupted download
    resumes: chunks inside the stored range of the series that hold bars are skipped (those at
    its edges, which may have been cut short, are fetched again; the store's upsert absorbs
    the overlap).

    While IB says its historical-data farm is down (notice 2105, as during the nightly reset),
    no request is sent: the download waits for 2106, up to ``farm_wait`` seconds, without
    spending a retry, then raises :class:`~ibkrfw.RequestError` if the farm is still down.

    Args:
        client: A connected (or connectable) :class:`~ibkrfw.ibkr.IBClient`.
        store: Where the bars go.
        pacer: The pacing rules (IB's by default).
        backoff: Delays before a retry (15 s doubling to 2 minutes by default).
        max_retries: How many times one chunk may be sent again.
        timeout: Seconds to wait for one answer (the client's ``request_timeout`` if None).
        farm_wait: The longest wait, in seconds, for the historical-data farm to come back.
        progress: A progress bar on stderr for each :meth:`download`, moved after every
            request (``ACME 1min: 40%|####  | 8/20 [...] bars=15600``; a bar in a terminal,
            a widget in Jupyter with ipywidgets, a few plain lines in a log): True for
            every download, None for those of more than one request, False (the default)
            for none; or a function called with a :class:`DownloadProgress` after every
            chunk.
        sleep: How to wait (for tests).
        clock: A monotonic clock in seconds (for tests).
    """

    def __init__(
        self,
        client: IBClient,
        store: BarStore,
        *,
        pacer: HistoryPacer | None = None,
        backoff: Backoff | None = None,
        max_retries: int = 5,
        timeout: float | None = None,
        farm_wait: float = 1800.0,
        progress: bool | Callable[[DownloadProgress], None] | None = False,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check_progress(progress, "HistoryDownloader", callable_ok=True)
        if not farm_wait >= 0:
            raise ConfigError(f"farm_wait must be zero or more seconds, got {farm_wait!r}")
        self.client = client
        self.store = store
        self.pacer = pacer or HistoryPacer()
        self.backoff = backoff or Backoff(base=15.0, cap=120.0)
        self.max_retries = max_retries
        self.timeout = timeout
        self.farm_wait = farm_wait
        self.progress = progress
        self._sleep = sleep
        self._clock = clock

    def download(
        self,
        instrument: Instrument,
        bar_size: str,
        start_ns: int,
        end_ns: int,
        *,
        what_to_show: str = "TRADES",
        use_rth: bool = False,
    ) -> DownloadReport:
        """Download ``instrument``'s bars in ``[start_ns, end_ns)`` into the store.

        Raises:
            RequestError: if a chunk still fails after ``max_retries`` retries, or IB refuses
                the request (no permission, unknown contract...); what was stored stays.
            ConfigError: for a bar size IB does not have, or an empty range.
        """
        size = normalize_bar_size(bar_size)
        chunks = history_chunks(start_ns, end_ns, size)
        stored = self._stored_range(instrument, size)
        bars = skipped = retries = 0
        progress = self.progress
        report = progress if callable(progress) else None
        shown = progress is True or (progress is None and len(chunks) > 1)
        desc = f"{instrument.symbol} {size}"
        meter = make_bar(total=len(chunks), desc=desc, unit="request") if shown else None
        try:
            for done, chunk in enumerate(chunks, 1):
                if self._is_stored(instrument, size, chunk, stored):
                    skipped += 1
                else:
                    frame, tries = self._fetch(instrument, size, chunk, what_to_show, use_rth)
                    retries += tries
                    if frame is not None and len(frame):
                        inside = (frame.index >= _utc(start_ns)) & (frame.index < _utc(end_ns))
                        bars += self.store.write(instrument, size, frame[inside])
                if report is not None:
                    report(DownloadProgress(instrument, size, done, len(chunks), bars))
                if meter is not None:
                    meter.set_postfix(bars=bars, stored_before=skipped, refresh=False)
                    meter.update(1)
        finally:
            if meter is not None:
                meter.close()
        return DownloadReport(instrument, size, len(chunks), skipped, bars, retries)

    def _stored_range(self, instrument: Instrument, size: str) -> tuple[int, int] | None:
        for info in self.store.series():
            if info.key == instrument.id and info.bar_size == size and info.rows:
                return info.first_ns, info.last_ns
        return None

    def _is_stored(
        self, instrument: Instrument, size: str, chunk: HistoryChunk, stored: tuple[int, int] | None
    ) -> bool:
        """Whether an earlier download wrote this chunk: inside the stored range, not a hole."""
        if stored is None or not (stored[0] <= chunk.start_ns and chunk.end_ns <= stored[1]):
            return False
        held = self.store.arrays(instrument, size, _utc(chunk.start_ns), _utc(chunk.end_ns))
        return len(held.ts_ns) > 0

    def _fetch(
        self,
        instrument: Instrument,
        size: str,
        chunk: HistoryChunk,
        what_to_show: str,
        use_rth: bool,
    ) -> tuple[pd.DataFrame | None, int]:
        contract = to_ib_contract(instrument)
        ib_size = ib_bar_size(size)
        request = HistoryRequest(
            f"{instrument.symbol}:{instrument.asset_class.value}:{instrument.currency}",
            instrument.exchange, what_to_show, ib_size, chunk.end, chunk.duration,
        )  # fmt: skip
        tries = 0
        while True:
            wait = self.pacer.delay(request, self._clock())
            if wait > 0:  # inf: too many requests open (a shared pacer): look again soon
                log.debug("pacing: waiting %.2f s before %s", wait, request)
                self._sleep(wait if math.isfinite(wait) else _OPEN_POLL_S)
                continue
            if self.client.monitor.state is not ConnectionState.CONNECTED:
                self.client.connect()
            self._wait_for_the_farm()

            opened: list[bool] = []  # filled once the pacer counts this request as open
            try:
                rows = self.client.request(
                    "reqHistoricalData", contract, chunk.end, chunk.duration, ib_size,
                    what_to_show, int(use_rth), 2, False, [],
                    rows="historicalData", timeout=self.timeout,
                    on_sent=functools.partial(self._sent, request, opened),
                )  # fmt: skip
            except RequestError as exc:
                if _is_no_data(exc):
                    return None, tries
                if (exc.code is not None and not _is_pacing(exc)) or tries >= self.max_retries:
                    raise
                tries += 1
                delay = self.backoff.next()
                log.warning("%s; retry %d in %.1f s", exc, tries, delay)
                self._sleep(delay)
                continue
            finally:
                if opened:  # a request never sent must not close another's (a shared pacer)
                    self.pacer.finished()
            self.backoff.reset()
            return _frame(instrument, rows), tries

    def _sent(self, request: HistoryRequest, opened: list[bool]) -> None:
        """Count ``request`` in the pacer from now: IB counts from when it reaches it."""
        self.pacer.sent(request, self._clock())
        opened.append(True)

    def _wait_for_the_farm(self) -> None:
        """Return once the historical-data farm is not known to be down (2105 undone by 2106).

        Raises:
            RequestError: if it stays down longer than ``farm_wait`` seconds.
        """
        farms = self.client.monitor.farms
        if farms[Farm.HISTORICAL] is not False:
            return
        log.warning("the historical-data farm is down (2105): waiting for it (2106)")
        deadline = self._clock() + self.farm_wait
        while farms[Farm.HISTORICAL] is False:
            left = deadline - self._clock()
            if left <= 0:
                raise RequestError(
                    f"the historical-data farm has been down (2105) for more than "
                    f"{self.farm_wait:g} s; what was downloaded is stored",
                    code=2105,
                )
            self._sleep(min(_FARM_POLL_S, left))
        log.info("the historical-data farm is back (2106): downloading again")


_FARM_POLL_S = 0.25  # how often a download waiting for the farm looks again
_OPEN_POLL_S = 0.25  # ... or for one of too many open requests to finish


def _utc(ts_ns: int) -> pd.Timestamp:
    import pandas as pd

    return pd.Timestamp(ts_ns, unit="ns", tz="UTC")


def _frame(instrument: Instrument, rows: list[tuple[Any, ...]]) -> pd.DataFrame:
    import pandas as pd

    bars = [IBKRDataFeed._history_bar(instrument, row[0]) for row in rows]
    stamps = np.array([b.ts_ns for b in bars], dtype="datetime64[ns]")
    index = pd.DatetimeIndex(stamps, name="timestamp").tz_localize("UTC")
    return pd.DataFrame(
        {
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [b.volume for b in bars],
        },
        index=index,
    )
