"""A future's listed months from IB, over a real socket against the fake TWS."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from ibkrfw import ConfigError, ContractNotFoundError, Future, Stock
from ibkrfw.data import DaysBeforeExpiry, continuous_series, load_sample
from ibkrfw.ibkr import ContractCache, ContractLookup, IBClient, IBKRConfig
from ibkrfw.testing import FakeTWS

CHAIN = [  # given out of order, as IB may list them
    Future("ES", expiry="20270319", exchange="CME", multiplier=50, tick_size="0.25"),
    Future("ES", expiry="20261218", exchange="CME", multiplier=50, tick_size="0.25"),
    Future("ES", expiry="20270618", exchange="CME", multiplier=50, tick_size="0.25"),
]
CL = Future(
    "CL", expiry="20261120", contract_month="202701", exchange="NYMEX", timezone="America/Chicago"
)
NQ = Future("NQ", expiry="20261218", exchange="CME", multiplier=20, tick_size="0.25")


@pytest.fixture
def tws() -> Iterator[FakeTWS]:
    frame = load_sample()
    bars = frame[frame["symbol"] == "ACME"].set_index("timestamp")
    with FakeTWS(data=dict.fromkeys([*CHAIN, CL, NQ, Stock("ES")], bars)) as server:
        yield server


@pytest.fixture
def lookup(tws: FakeTWS) -> Iterator[ContractLookup]:
    client = IBClient(IBKRConfig(port=tws.port, request_timeout=5), reconnect=False)
    client.connect()
    yield ContractLookup(client, min_interval_s=0.05)
    client.close()


def test_future_months_lists_every_month_nearest_first(
    tws: FakeTWS, lookup: ContractLookup
) -> None:
    months = lookup.future_months("ES", exchange="CME")
    futures = [m.instrument for m in months]
    assert futures == sorted(CHAIN, key=lambda f: f.expiry)  # equal keys: the stored ids hold
    assert [(f.local_symbol, f.contract_month, f.last_trade_date) for f in futures] == [  # type: ignore[attr-defined]
        ("ESZ6", "202612", "20261218"),
        ("ESH7", "202703", "20270319"),
        ("ESM7", "202706", "20270618"),
    ]
    assert [m.con_id for m in months] == [tws.market.con_ids[f] for f in futures]
    assert all(f.multiplier == 50 for f in futures)  # the stock ES is not a month of it


def test_future_months_reads_ibs_contract_month_apart_from_the_last_trading_day(
    lookup: ContractLookup,
) -> None:
    (cl,) = lookup.future_months("cl")
    future = cl.instrument
    assert isinstance(future, Future)
    assert (future.expiry, future.contract_month, future.month_code) == ("20261120", "202701", "F")
    assert future.days_to_expiry(int(pd.Timestamp("2026-11-10 20:00", tz="UTC").value)) == 10


def test_future_months_feed_roll_rules(lookup: ContractLookup) -> None:
    months = [m.instrument for m in lookup.future_months("ES")]
    days = pd.date_range("2026-12-01 21:00", periods=12, freq="D", tz="UTC")
    bars = {
        f: pd.DataFrame(
            {
                "open": 100.0 + k,
                "high": 101.0 + k,
                "low": 99.0 + k,
                "close": 100.0 + k,
                "volume": 1.0,
            },
            index=days,
        )
        for k, f in enumerate(months[:2])
    }
    series = continuous_series(bars, DaysBeforeExpiry(8))  # type: ignore[arg-type]
    assert list(series.index[series["roll"]]) == [pd.Timestamp("2026-12-10 21:00", tz="UTC")]


def test_future_months_of_an_unknown_future_says_so(lookup: ContractLookup) -> None:
    with pytest.raises(ContractNotFoundError, match=r"IB lists no future 'ZZ' \(sec type FUT\)"):
        lookup.future_months("ZZ")
    with pytest.raises(
        ContractNotFoundError, match=r"no future 'ES' \(sec type FUT, exchange EUREX\)"
    ):
        lookup.future_months("ES", exchange="EUREX")
    with pytest.raises(ConfigError, match=r"currency 'usd' is not a currency code"):
        lookup.future_months("ES", currency="usd")
    with pytest.raises(ConfigError, match=r"the future's symbol ''"):
        lookup.future_months("")


def test_future_months_are_cached(tws: FakeTWS, tmp_path: object, lookup: ContractLookup) -> None:
    from pathlib import Path

    lookup.cache = ContractCache.in_directory(Path(str(tmp_path)))
    first = lookup.future_months("ES", exchange="CME")
    asked = len(tws.messages("in", msg_id=9))  # reqContractDetails
    again = lookup.future_months("ES", exchange="CME")
    assert again == first and len(tws.messages("in", msg_id=9)) == asked
    cached = again[0].instrument
    assert isinstance(cached, Future) and cached.last_trade_date == "20261218"
