"""Roll rules, roll schedules and continuous futures series."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibkrfw import ConfigError, DataError, Future
from ibkrfw.data import (
    DaysBeforeExpiry,
    RollRule,
    VolumeCrossover,
    continuous_series,
    roll_schedule,
)
from ibkrfw.sim import DataFrameFeed

START = pd.Timestamp("2026-01-05 21:00", tz="UTC")  # daily bars, stamped at the close


def chain(n: int, gap: int, seed: int, *, expiry_offset: int = 2) -> dict[Future, pd.DataFrame]:
    """``n`` contracts on one daily index of ``n * gap`` days; contract k is the most traded
    in days [k*gap, (k+1)*gap) and its last trading day is day (k+1)*gap + expiry_offset."""
    rng = np.random.default_rng(seed)
    days = pd.date_range(START, periods=n * gap, freq="D")
    contracts = {}
    for k in range(n):
        last = (START + pd.Timedelta(days=(k + 1) * gap + expiry_offset)).tz_convert(
            "America/New_York"
        )
        fut = Future("ES", expiry=f"{last:%Y%m%d}", exchange="CME", multiplier=50)
        close = 100 * (k + 1) * np.exp(np.cumsum(rng.normal(0, 0.01, len(days))))
        active = (np.arange(len(days)) >= k * gap) & (np.arange(len(days)) < (k + 1) * gap)
        volume = np.where(active, 10_000.0, 100.0) * rng.uniform(0.5, 1.0, len(days))
        contracts[fut] = pd.DataFrame(
            {
                "open": close * 0.999,
                "high": close * 1.01,
                "low": close * 0.99,
                "close": close,
                "volume": volume,
            },
            index=days,
        )
    return contracts


def held_prices(contracts: dict[Future, pd.DataFrame], series: pd.DataFrame) -> pd.DataFrame:
    """The raw prices of the contract each bar of ``series`` holds."""
    by_id = {c.id: bars for c, bars in contracts.items()}
    rows = [by_id[cid].loc[ts] for ts, cid in series["contract"].items()]
    return pd.DataFrame(rows, index=series.index)[["open", "high", "low", "close"]]


def next_close_before(contracts: dict[Future, pd.DataFrame], series: pd.DataFrame) -> pd.Series:
    """For each bar, the held contract's close on the bar before (the roll bar: the new one's)."""
    by_id = {c.id: bars for c, bars in contracts.items()}
    previous = series.index.to_series().shift(1)
    values = [
        by_id[cid].loc[prev, "close"] if prev is not pd.NaT else np.nan
        for prev, cid in zip(previous, series["contract"], strict=True)
    ]
    return pd.Series(values, index=series.index, dtype=float)


rules = st.one_of(
    st.builds(DaysBeforeExpiry, st.integers(0, 3)),
    st.builds(VolumeCrossover, days=st.integers(1, 3)),
)


@given(
    n=st.integers(2, 4),
    gap=st.integers(8, 20),
    seed=st.integers(0, 2**32 - 1),
    rule=rules,
)
def test_continuous_series_adjustments_keep_the_held_contracts_moves(
    n: int, gap: int, seed: int, rule: RollRule
) -> None:
    contracts = chain(n, gap, seed)
    rolls = roll_schedule(contracts, rule)
    assert len(rolls) == n - 1
    raw = continuous_series(contracts, rule, adjust="none")
    diff = continuous_series(contracts, rule, adjust="difference")
    ratio = continuous_series(contracts, rule, adjust="ratio")
    for series in (raw, diff, ratio):
        # the roll bars are the rule's, and every bar is the held contract's
        assert list(series.index[series["roll"]]) == [r.timestamp for r in rolls]
        assert series.index.equals(raw.index)
        assert (series["contract"] == raw["contract"]).all()
        assert (series["volume"] == raw["volume"]).all()
    held = held_prices(contracts, raw)
    # none: prices as traded
    pd.testing.assert_frame_equal(raw[["open", "high", "low", "close"]], held)
    last = raw["contract"] == raw["contract"].iloc[-1]
    for series in (diff, ratio):  # the latest contract's prices stay as they are
        pd.testing.assert_frame_equal(
            series.loc[last, ["open", "high", "low", "close"]], held[last]
        )
    # difference: each bar's change is the held contract's (no jump at a roll)
    before = next_close_before(contracts, raw)
    np.testing.assert_allclose(
        diff["close"].diff().iloc[1:], (held["close"] - before).iloc[1:], rtol=0, atol=1e-8
    )
    # ratio: each bar's return is the held contract's
    np.testing.assert_allclose(
        ratio["close"].pct_change().iloc[1:], (held["close"] / before - 1).iloc[1:], atol=1e-12
    )
    for roll in rolls:  # the adjusted close before the roll is the next contract's, that day
        later = sum(r.gap for r in rolls if r.timestamp > roll.timestamp)
        assert diff.loc[roll.measured_at, "close"] == pytest.approx(roll.to_close + later)
        assert diff.loc[roll.measured_at, "contract"] == roll.from_contract.id


def test_days_before_expiry_rolls_on_the_first_bar_that_close_to_the_last_trading_day() -> None:
    contracts = chain(2, 10, seed=1, expiry_offset=0)  # the front's last day: day 10
    front, nxt = list(contracts)
    rolls = roll_schedule(contracts, DaysBeforeExpiry(3))
    assert [(r.from_contract, r.to_contract) for r in rolls] == [(front, nxt)]
    assert rolls[0].timestamp == START + pd.Timedelta(days=7)
    assert rolls[0].measured_at == START + pd.Timedelta(days=6)
    assert front.days_to_expiry(int(rolls[0].timestamp.value)) == 3


def test_volume_crossover_rolls_after_k_days_of_the_next_contract_leading() -> None:
    contracts = chain(3, 10, seed=2)
    rolls = roll_schedule(contracts, VolumeCrossover(days=2))
    # contract k+1 leads from day 10(k+1) on: two closed bars of lead, roll on the third
    assert [r.timestamp for r in rolls] == [
        START + pd.Timedelta(days=12),
        START + pd.Timedelta(days=22),
    ]


def test_a_rule_that_never_fires_rolls_on_the_last_common_bar() -> None:
    contracts = chain(2, 10, seed=3)
    front, nxt = list(contracts)
    bars = contracts[nxt].assign(volume=0.0)  # never out-trades the front
    rolls = roll_schedule({front: contracts[front], nxt: bars}, VolumeCrossover())
    assert rolls[0].timestamp == contracts[front].index[-1]


def test_open_interest_crossover_needs_the_column_and_says_ib_bars_lack_it() -> None:
    contracts = chain(2, 10, seed=4)
    with pytest.raises(DataError, match=r"bars of ES\.\d{8}\.CME have no 'open_interest'.*IB"):
        roll_schedule(contracts, VolumeCrossover(column="open_interest"))
    with_oi = {c: b.assign(open_interest=b["volume"] * 10) for c, b in contracts.items()}
    series = continuous_series(with_oi, VolumeCrossover(column="open_interest"))
    assert "open_interest" in series.columns
    assert series["roll"].sum() == 1


def test_days_before_expiry_needs_the_last_trading_day() -> None:
    contracts = chain(2, 10, seed=5)
    front, nxt = list(contracts)
    month_only = Future("ES", expiry="202512", exchange="CME")
    with pytest.raises(ConfigError, match=r"last trading day is not known.*last_trade_date"):
        roll_schedule({month_only: contracts[front], nxt: contracts[nxt]}, DaysBeforeExpiry(2))


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: DaysBeforeExpiry(-1), ConfigError, r"DaysBeforeExpiry\(days=-1\)"),
        (lambda: DaysBeforeExpiry(1.5), ConfigError, r"whole number"),  # type: ignore[arg-type]
        (lambda: VolumeCrossover(days=0), ConfigError, r"VolumeCrossover\(days=0\)"),
        (lambda: VolumeCrossover(column="oi"), ConfigError, r"column='oi'"),  # type: ignore[arg-type]
    ],
)
def test_rules_refuse_bad_parameters(make: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        make()  # type: ignore[operator]


def test_chains_are_checked() -> None:
    contracts = chain(2, 10, seed=6)
    front, nxt = list(contracts)
    bars = contracts[front]
    rule = DaysBeforeExpiry(2)
    nq = Future("NQ", expiry=nxt.expiry, exchange="CME")
    with pytest.raises(ConfigError, match=r"NQ\.\d+\.CME is not of the same future as ES"):
        roll_schedule({front: bars, nq: bars}, rule)
    same_month = Future("ES", expiry=front.contract_month, exchange="CME")
    with pytest.raises(ConfigError, match=r"ES\.\d{6}\.CME and ES\.\d{8}\.CME may be the same"):
        roll_schedule({front: bars, same_month: bars}, rule)
    with pytest.raises(DataError, match=r"time-zone-aware"):
        roll_schedule({front: bars.tz_convert(None), nxt: bars}, rule)
    with pytest.raises(DataError, match=r"no column\(s\) \['volume'\]"):
        roll_schedule({front: bars.drop(columns="volume"), nxt: bars}, rule)
    with pytest.raises(DataError, match=r"1 bar\(s\) in common.*overlap"):
        roll_schedule({front: bars.iloc[:6], nxt: contracts[nxt].iloc[5:]}, rule)
    with pytest.raises(ConfigError, match=r"give a RollRule"):
        roll_schedule(contracts, "5 days")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"adjust='log'.*'difference', 'ratio', 'none'"):
        continuous_series(contracts, rule, adjust="log")  # type: ignore[arg-type]


def test_ratio_needs_positive_closes_where_the_gap_is_measured() -> None:
    contracts = chain(2, 10, seed=7, expiry_offset=0)
    front, nxt = list(contracts)
    bars = contracts[front].copy()
    bars.loc[START + pd.Timedelta(days=7), "close"] = -1.0  # the day the gap is measured
    with pytest.raises(DataError, match=r"must be positive.*adjust='difference'"):
        continuous_series({front: bars, nxt: contracts[nxt]}, DaysBeforeExpiry(2), "ratio")
    series = continuous_series({front: bars, nxt: contracts[nxt]}, DaysBeforeExpiry(2))
    assert series["roll"].sum() == 1  # difference works on negative prices


def test_continuous_series_feeds_a_backtest() -> None:
    contracts = chain(3, 10, seed=8)
    series = continuous_series(contracts, VolumeCrossover(days=2), adjust="ratio")
    feed = DataFrameFeed(series, Future("ES", expiry="20991231", exchange="CME"))
    assert feed is not None
    assert series.index.name == "timestamp" and str(series.index.tz) == "UTC"
    assert series.index.min() == START and len(series) == 30
    assert series.index[-1].date() == (START + dt.timedelta(days=29)).date()
