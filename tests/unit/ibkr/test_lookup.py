"""The pure parts of contract lookup: IB's trading hours, time zones, contract details."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from ibapi.contract import Contract, ContractDetails

from ibkrfw import ConfigError, DataError, Forex, Future, Stock
from ibkrfw.ibkr import ContractCache, ContractInfo, ContractMatch, parse_trading_hours
from ibkrfw.ibkr.lookup import contract_info, ib_time_zone
from ibkrfw.testing.faketws.messages import trading_hours

NEW_YORK = dt.timezone(dt.timedelta(hours=-5))  # in December


def ns(*args: int, tz: dt.tzinfo = NEW_YORK) -> int:
    return int(dt.datetime(*args, tzinfo=tz).timestamp()) * 1_000_000_000


def test_trading_hours_in_ibs_current_layout_are_read() -> None:
    text = "20231204:0400-20231204:2000;20231205:0400-20231205:2000;20231209:CLOSED"
    sessions = parse_trading_hours(text, "US/Eastern")
    assert [(s.start_ns, s.end_ns) for s in sessions] == [
        (ns(2023, 12, 4, 4), ns(2023, 12, 4, 20)),
        (ns(2023, 12, 5, 4), ns(2023, 12, 5, 20)),
    ]


def test_trading_hours_in_ibs_older_layout_are_read_past_midnight() -> None:
    # several ranges a day, and one ending after midnight (an end before its start)
    text = "20231204:0930-1200,1300-1600;20231205:1700-0200;20231206:CLOSED"
    sessions = parse_trading_hours(text, "EST")
    assert [(s.start_ns, s.end_ns) for s in sessions] == [
        (ns(2023, 12, 4, 9, 30), ns(2023, 12, 4, 12)),
        (ns(2023, 12, 4, 13), ns(2023, 12, 4, 16)),
        (ns(2023, 12, 5, 17), ns(2023, 12, 6, 2)),
    ]


def test_trading_hours_overnight_futures_sessions_keep_their_dates() -> None:
    text = "20231203:1700-20231204:1600;20231204:1700-20231205:1600"
    sessions = parse_trading_hours(text, "US/Central")
    chicago = dt.timezone(dt.timedelta(hours=-6))
    assert sessions[0].start_ns == ns(2023, 12, 3, 17, tz=chicago)
    assert sessions[0].end_ns == ns(2023, 12, 4, 16, tz=chicago)
    assert str(sessions[0]) == "2023-12-03 23:00-2023-12-04 22:00 UTC"


def test_trading_hours_follow_daylight_saving() -> None:
    (summer,) = parse_trading_hours("20230703:0930-20230703:1600", "America/New_York")
    assert summer.start_ns == ns(2023, 7, 3, 9, 30, tz=dt.timezone(dt.timedelta(hours=-4)))


def test_empty_trading_hours_are_no_sessions() -> None:
    assert parse_trading_hours("", "US/Eastern") == ()
    assert parse_trading_hours("20231209:CLOSED;20231210:CLOSED", "US/Eastern") == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("20231204", r"trading hours '20231204': expected DATE:HHMM-HHMM"),
        ("20231204:0930", r"trading hours '0930': expected HHMM-HHMM"),
        ("2023-12-04:0930-1600", r"2023-12-04:0930 is not yyyymmdd:HHMM"),
        ("20231204:0930-20231204:2500", r"20231204:2500 is not yyyymmdd:HHMM"),
        ("20231204:1600-20231203:0930", r"end before they start"),
    ],
)
def test_malformed_trading_hours_are_an_error_naming_them(text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        parse_trading_hours(text, "US/Eastern")


def test_ibs_time_zone_names_become_iana_names() -> None:
    assert ib_time_zone("US/Eastern") == "America/New_York"
    assert ib_time_zone("EST") == "America/New_York"
    assert ib_time_zone("Europe/London") == "Europe/London"
    with pytest.raises(DataError, match="IB's time zone 'Mars/Olympus' is not a known"):
        ib_time_zone("Mars/Olympus")


def details(
    symbol: str = "AAPL",
    sec_type: str = "STK",
    *,
    exchange: str = "SMART",
    primary: str = "NASDAQ",
    currency: str = "USD",
    min_tick: float = 0.01,
    multiplier: str = "",
    zone: str = "US/Eastern",
    hours: str = "20231204:0400-20231204:2000",
    liquid: str = "20231204:0930-20231204:1600",
) -> ContractDetails:
    """IB's own ContractDetails, filled as TWS fills it."""
    contract = Contract()
    contract.symbol, contract.secType, contract.conId = symbol, sec_type, 265598
    contract.exchange, contract.primaryExchange, contract.currency = exchange, primary, currency
    contract.multiplier = multiplier
    if sec_type == "FUT":
        contract.lastTradeDateOrContractMonth = "20261218"
    result = ContractDetails()
    result.contract = contract
    result.minTick, result.longName = min_tick, "APPLE INC"
    result.validExchanges = "SMART,NASDAQ,ARCA"
    result.timeZoneId, result.tradingHours, result.liquidHours = zone, hours, liquid
    return result


def test_contract_details_become_an_instrument_and_its_details() -> None:
    info = contract_info(details(), fetched_at_s=12.5)
    assert info.instrument == Stock("AAPL", primary_exchange="NASDAQ")
    assert (info.con_id, info.long_name, info.time_zone) == (
        265598,
        "APPLE INC",
        "America/New_York",
    )
    assert info.valid_exchanges == ("SMART", "NASDAQ", "ARCA")
    assert [s.start_ns for s in info.trading_hours] == [ns(2023, 12, 4, 4)]
    assert [s.start_ns for s in info.liquid_hours] == [ns(2023, 12, 4, 9, 30)]
    assert info.fetched_at_s == 12.5


def test_contract_details_of_a_future_carry_its_multiplier_tick_and_zone() -> None:
    info = contract_info(
        details("ES", "FUT", exchange="CME", primary="", min_tick=0.25, multiplier="50",
                zone="US/Central", hours="", liquid="")
    )  # fmt: skip
    assert info.instrument == Future(
        "ES", expiry="20261218", exchange="CME", multiplier=50, tick_size=Decimal("0.25"),
        timezone="America/Chicago",
    )  # fmt: skip
    assert info.trading_hours == info.liquid_hours == ()


def test_contract_details_of_a_pair_become_a_forex_instrument() -> None:
    info = contract_info(
        details("EUR", "CASH", exchange="IDEALPRO", primary="", min_tick=0.00005, zone="EST")
    )
    assert info.instrument == Forex("EUR", currency="USD")


def test_contract_details_of_an_option_are_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError, match=r"AAPL \(con id 265598\) is a OPT: .*resolve cannot"):
        contract_info(details(sec_type="OPT"))


def test_a_contract_info_and_a_match_turn_into_json_ready_values() -> None:
    info = contract_info(details())
    data = info.to_dict()
    assert data["instrument"]["primary_exchange"] == "NASDAQ"
    assert data["trading_hours"] == [
        {"start_ns": ns(2023, 12, 4, 4), "end_ns": ns(2023, 12, 4, 20)}
    ]
    match = ContractMatch(1, "AAPL", "STK", "NASDAQ", "USD", ("OPT",), "APPLE INC", 3.0)
    assert match.to_dict()["derivative_sec_types"] == ["OPT"]
    assert str(match) == "AAPL STK NASDAQ USD (con id 1) APPLE INC"


def test_the_cache_round_trips_what_it_stores(tmp_path: Path) -> None:
    cache = ContractCache(tmp_path / "deep" / "contracts.json", wall_clock=lambda: 100.0)
    match = ContractMatch(1, "AAPL", "STK", "NASDAQ", "USD", ("OPT",), "", 99.0)
    info = contract_info(details(), fetched_at_s=99.0)
    cache.store_search("aapl", [match])
    cache.store_details("265598", [info])
    again = ContractCache(tmp_path / "deep" / "contracts.json", wall_clock=lambda: 100.0)
    assert again.searched("AAPL") == [match]
    (got,) = again.resolved("265598") or []
    assert got == info and isinstance(got, ContractInfo)
    assert got.instrument == Stock("AAPL", primary_exchange="NASDAQ")
    assert again.searched("MSFT") is None and again.problem is None


def test_the_fake_lists_a_week_of_hours_as_ib_does() -> None:
    friday = dt.date(2026, 12, 4)
    text = trading_hours(Stock("ACME"), friday)
    assert text.split(";")[:3] == [
        "20261204:0930-20261204:1600", "20261205:CLOSED", "20261206:CLOSED",
    ]  # fmt: skip
    assert len(parse_trading_hours(text, "America/New_York")) == 5
    fx = trading_hours(Forex("EUR"), friday).split(";")
    # the forex day opens the evening before: Sunday is not listed as closed
    assert fx[:3] == ["20261203:1700-20261204:1700", "20261205:CLOSED",
                      "20261206:1700-20261207:1700"]  # fmt: skip


def test_details_on_several_exchanges_are_picked_by_exchange_then_smart_never_guessed() -> None:
    from ibkrfw import AmbiguousContractError
    from ibkrfw.ibkr.lookup import _pick

    rows = [contract_info(details(exchange=e)) for e in ("NASDAQ", "SMART", "ARCA")]
    assert _pick(rows, None, 265598) == 1  # SMART, IB's routing
    assert _pick(rows, "ARCA", 265598) == 2
    assert _pick(rows[:1], "ARCA", 265598) == 0  # one row: the only answer
    with pytest.raises(AmbiguousContractError, match=r"con id 265598 on 2 exchanges: NASDAQ, ARCA"):
        _pick([rows[0], rows[2]], None, 265598)
