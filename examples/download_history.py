"""Download history from (the fake) TWS into a local store, within IB's pacing rules.

Run it with ``python examples/download_history.py`` (needs ``pip install "ibkrfw[ibkr]"``).
The fake TWS serves the sample's daily bars over a real socket; ``HistoryDownloader`` asks for
them in chunks IB accepts, paced by IB's rules (no identical request within 15 s, at most six
per contract in 2 s, 60 in 10 minutes), retries pacing violations (error 162) after a backoff,
and writes each chunk to a SQLite store as it arrives, so an interrupted download resumes. With
TWS, the same is ``ibkrfw download --symbols AAPL --bar-size 1min --start ... --store bars.db``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from ibkrfw.data import SQLiteBarStore, sample_instruments
from ibkrfw.ibkr import IBClient, IBKRConfig
from ibkrfw.ibkr.download import HistoryDownloader
from ibkrfw.testing import FakeTWS


def main() -> None:
    acme = sample_instruments(["ACME"])["ACME"]
    with tempfile.TemporaryDirectory() as folder, FakeTWS.from_sample(["ACME"]) as tws:
        tws.step(100_000)  # the fake's whole sample is now in the past, as history
        client = IBClient(IBKRConfig(port=tws.port, client_id=11))
        client.connect()
        try:
            with SQLiteBarStore(Path(folder) / "bars.db") as store:
                report = HistoryDownloader(client, store).download(
                    acme, "1d",
                    pd.Timestamp("2019-01-01", tz="America/New_York").value,
                    pd.Timestamp("2020-01-01", tz="America/New_York").value,
                )  # fmt: skip
                bars = store.read(acme, "1d")
        finally:
            client.close()
    print(f"{report.chunks} request(s), {report.retries} retries, {report.bars} bars written")
    print(f"{len(bars)} daily bars of ACME stored, {bars.index[0]:%Y-%m-%d} to "
          f"{bars.index[-1]:%Y-%m-%d}")  # fmt: skip


if __name__ == "__main__":
    main()
