"""Contract lookup against the fake TWS over a real socket: search, resolve, cache, CLI."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ibkrfw import (
    AmbiguousContractError,
    ConfigError,
    ContractNotFoundError,
    Forex,
    Future,
    Instrument,
    RequestError,
    Stock,
)
from ibkrfw.data import calendar_for, load_sample
from ibkrfw.ibkr import ContractCache, ContractLookup, Farm, IBClient, IBKRConfig
from ibkrfw.testing import FakeTWS

ACME_NYSE = Stock("ACME", primary_exchange="NYSE")
ACME_TSE = Stock("ACME", primary_exchange="TSE", currency="CAD")
ACRE = Stock("ACRE", primary_exchange="NASDAQ")
ES = Future(
    "ES", expiry="202612", exchange="CME", multiplier=50, tick_size="0.25",
    timezone="America/Chicago",
)  # fmt: skip
EUR = Forex("EUR", currency="USD")
MATCHING_SYMBOLS = 81  # reqMatchingSymbols' message id
FAST = 0.05  # seconds between searches in tests that do not check IB's one a second


def _fake() -> FakeTWS:
    frame = load_sample()
    bars = frame[frame["symbol"] == "ACME"].set_index("timestamp")
    return FakeTWS(data=dict.fromkeys((ACME_NYSE, ACME_TSE, ACRE, ES, EUR), bars))


@pytest.fixture
def tws() -> Iterator[FakeTWS]:
    with _fake() as server:
        yield server


@pytest.fixture
def client(tws: FakeTWS) -> Iterator[IBClient]:
    ib = IBClient(IBKRConfig(port=tws.port, request_timeout=5), reconnect=False)
    ib.connect()
    yield ib
    ib.close()


def searches(tws: FakeTWS) -> list[float]:
    return [r.at for r in tws.messages("in", msg_id=MATCHING_SYMBOLS)]


def con_id(tws: FakeTWS, inst: Instrument) -> int:
    return tws.market.con_ids[inst]


# --- search ------------------------------------------------------------------------------------
def test_search_lists_every_contract_whose_symbol_starts_with_the_text(
    tws: FakeTWS, client: IBClient
) -> None:
    found = ContractLookup(client, min_interval_s=FAST).search("ac")
    assert [(m.symbol, m.primary_exchange, m.currency) for m in found] == [
        ("ACME", "NYSE", "USD"), ("ACME", "TSE", "CAD"), ("ACRE", "NASDAQ", "USD"),
    ]  # fmt: skip
    assert [m.con_id for m in found] == [con_id(tws, i) for i in (ACME_NYSE, ACME_TSE, ACRE)]
    assert found[0].sec_type == "STK" and found[0].derivative_sec_types == ("OPT",)
    assert abs(found[0].fetched_at_s - time.time()) < 60


def test_search_filters_by_sec_type_exchange_and_currency(client: IBClient) -> None:
    lookup = ContractLookup(client, min_interval_s=FAST)
    assert [m.symbol for m in lookup.search("E", sec_type="FUT")] == ["ES"]
    assert [m.symbol for m in lookup.search("E", sec_type="CASH")] == ["EUR"]
    assert [m.primary_exchange for m in lookup.search("ACME", currency="CAD")] == ["TSE"]
    assert [m.symbol for m in lookup.search("AC", exchange="NASDAQ")] == ["ACRE"]


def test_search_with_no_match_is_an_empty_answer(client: IBClient) -> None:
    assert ContractLookup(client, min_interval_s=FAST).search("ZZZ") == []


def test_search_takes_error_200_as_no_match(tws: FakeTWS, client: IBClient) -> None:
    # the fake answers an empty list, as TWS does; make it say 200 instead (private: a test
    # of the adapter's handling, not of the fake)
    def no_definition(session: object, fields: list[str]) -> None:
        session.error(int(fields[1]), 200, "No security definition has been found")  # type: ignore[attr-defined]

    tws._handlers[MATCHING_SYMBOLS] = no_definition
    assert ContractLookup(client, min_interval_s=FAST).search("ACME") == []


def test_searches_go_out_at_most_once_a_second(tws: FakeTWS, client: IBClient) -> None:
    lookup = ContractLookup(client)  # IB's rule: one reqMatchingSymbols a second
    for text in ("AC", "ACM", "E"):
        lookup.search(text)
    sent = searches(tws)
    assert len(sent) == 3
    # the fake stamps a request when read, a few milliseconds after it was written
    assert all(b - a >= 1.0 - 0.02 for a, b in itertools.pairwise(sent))


# --- resolve -----------------------------------------------------------------------------------
def test_resolve_returns_the_instrument_with_ibs_details(tws: FakeTWS, client: IBClient) -> None:
    info = ContractLookup(client, min_interval_s=FAST).resolve("ACRE")
    assert info.instrument == ACRE  # equal to the same stock built by hand
    assert info.con_id == con_id(tws, ACRE)
    assert info.instrument.tick_size == ACRE.tick_size
    assert info.valid_exchanges == ("SMART", "NASDAQ")
    assert info.time_zone == "America/New_York"
    # the fake lists a week of sessions from today, as TWS does: those of the calendar
    today = dt.datetime.now(dt.UTC).date()
    regular = calendar_for(ACRE).sessions(today - dt.timedelta(days=1), today + dt.timedelta(7))
    expected = set(zip(regular.open_ns.tolist(), regular.close_ns.tolist(), strict=True))
    liquid = {(s.start_ns, s.end_ns) for s in info.liquid_hours}
    assert liquid and liquid <= expected
    extended = info.trading_hours
    assert len(extended) == len(info.liquid_hours)
    assert all(t.start_ns < s.start_ns and t.end_ns > s.end_ns
               for t, s in zip(extended, info.liquid_hours, strict=True))  # fmt: skip


def test_resolve_carries_a_futures_multiplier_tick_and_time_zone(client: IBClient) -> None:
    info = ContractLookup(client, min_interval_s=FAST).resolve("ES", sec_type="FUT")
    assert info.instrument == ES
    assert info.instrument.multiplier == 50 and str(info.instrument.tick_size) == "0.25"
    assert info.time_zone == "America/Chicago"


def test_resolve_never_guesses_between_several_matches(tws: FakeTWS, client: IBClient) -> None:
    lookup = ContractLookup(client, min_interval_s=FAST)
    with pytest.raises(AmbiguousContractError) as caught:
        lookup.resolve("ACME")
    message = str(caught.value)
    assert "'ACME' is ambiguous: 2 contracts match" in message
    assert f"ACME STK NYSE USD (con id {con_id(tws, ACME_NYSE)})" in message
    assert f"ACME STK TSE CAD (con id {con_id(tws, ACME_TSE)})" in message
    assert f"exchange='NYSE' or con_id={con_id(tws, ACME_NYSE)}" in message
    assert [m.currency for m in caught.value.candidates] == ["USD", "CAD"]  # type: ignore[attr-defined]
    assert isinstance(caught.value, LookupError)
    # each way out the message offers works
    assert lookup.resolve("ACME", exchange="TSE").instrument == ACME_TSE
    assert lookup.resolve("ACME", currency="USD").instrument == ACME_NYSE
    assert lookup.resolve(con_id=con_id(tws, ACME_TSE)).instrument == ACME_TSE


def test_resolve_with_no_match_says_so(client: IBClient) -> None:
    lookup = ContractLookup(client, min_interval_s=FAST)
    with pytest.raises(ContractNotFoundError, match="no match for 'ZZZ': IB knows no contract"):
        lookup.resolve("ZZZ")
    # a prefix of other symbols is not a match: they are listed, not taken
    with pytest.raises(ContractNotFoundError, match=r"no match for 'AC'; IB has:\n  ACME"):
        lookup.resolve("AC")
    with pytest.raises(ContractNotFoundError, match=r"no match for 'ACRE' \(currency CAD\)"):
        lookup.resolve("ACRE", currency="CAD")


def test_resolve_takes_error_200_as_no_match(tws: FakeTWS, client: IBClient) -> None:
    lookup = ContractLookup(client, min_interval_s=FAST)
    with pytest.raises(ContractNotFoundError, match=r"no contract with con id 999999 .*error 200"):
        lookup.resolve(con_id=999_999)
    with pytest.raises(ContractNotFoundError, match="is ACRE, not 'ACME'"):
        lookup.resolve("ACME", con_id=con_id(tws, ACRE))
    with pytest.raises(ContractNotFoundError, match="its currency is USD, not CAD"):
        lookup.resolve(con_id=con_id(tws, ACRE), currency="CAD")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda lk: lk.search(""), r"the search text '': give the start of a symbol"),
        (lambda lk: lk.search("  "), r"the search text '  '"),
        (lambda lk: lk.search("AC", sec_type="STOCK"), r"sec_type 'STOCK' .* did you mean 'STK'"),
        (lambda lk: lk.search("AC", sec_type="stk"), r"sec_type 'stk' .* did you mean 'STK'"),
        (lambda lk: lk.search("AC", currency="usd"), r"currency 'usd' .* three capital"),
        (lambda lk: lk.search("AC", exchange=""), r"exchange '': give a name without spaces"),
        (lambda lk: lk.resolve(con_id=0), r"con_id 0 is not a contract id"),
        (lambda lk: lk.resolve(con_id=True), r"con_id True is not a contract id"),
        (lambda lk: lk.resolve(), r"the symbol None: give the start"),
    ],
)
def test_wrong_input_is_refused_before_asking_ib(
    tws: FakeTWS, client: IBClient, call: object, message: str
) -> None:
    lookup = ContractLookup(client, min_interval_s=FAST)
    with pytest.raises(ConfigError, match=message):
        call(lookup)  # type: ignore[operator]
    assert searches(tws) == []


def test_a_lookup_needs_a_client() -> None:
    with pytest.raises(ConfigError, match=r"give an IBClient, or use ContractLookup.open"):
        ContractLookup(IBKRConfig())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("setting", "value"), [("min_interval_s", -1), ("farm_wait", float("nan"))]
)
def test_a_lookup_refuses_negative_seconds(setting: str, value: float) -> None:
    client = IBClient(IBKRConfig())  # not connected: nothing is sent
    with pytest.raises(ConfigError, match=rf"ContractLookup\({setting}=.*0 or more"):
        ContractLookup(client, **{setting: value})  # type: ignore[arg-type]


# --- the cache ---------------------------------------------------------------------------------
def test_the_cache_answers_a_repeated_search_until_refreshed(
    tws: FakeTWS, client: IBClient, tmp_path: Path
) -> None:
    cache = ContractCache.in_directory(tmp_path / "state")
    lookup = ContractLookup(client, cache=cache, min_interval_s=FAST)
    first = lookup.search("AC")
    assert lookup.search("ac", currency="CAD") == [first[1]]  # the filters apply to it too
    assert len(searches(tws)) == 1
    assert lookup.search("AC", refresh=True) == first
    assert len(searches(tws)) == 2
    resolved = lookup.resolve("ACRE")  # a search for ACRE, and its details
    assert len(searches(tws)) == 3
    # another lookup (another run) reads the same file: IB is not asked again
    again = ContractLookup(client, cache=ContractCache.in_directory(tmp_path / "state"))
    assert again.search("AC") == first
    assert again.resolve("ACRE") == resolved
    assert len(searches(tws)) == 3
    assert len(tws.messages("in", msg_id=9)) == 1  # reqContractDetails
    assert again.resolve("ACRE", refresh=True) == resolved
    assert len(searches(tws)) == 4 and len(tws.messages("in", msg_id=9)) == 2
    assert (tmp_path / "state" / "contracts.json").is_file()


def test_the_cache_asks_again_once_an_answer_is_too_old(
    tws: FakeTWS, client: IBClient, tmp_path: Path
) -> None:
    now = [1_000_000.0]
    cache = ContractCache(tmp_path / "c.json", max_age_s=3600, wall_clock=lambda: now[0])
    lookup = ContractLookup(client, cache=cache, min_interval_s=FAST)
    lookup.search("AC")
    now[0] += 3599
    lookup.search("AC")
    assert len(searches(tws)) == 1
    now[0] += 2
    lookup.search("AC")
    assert len(searches(tws)) == 2


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("{not json", "is not JSON"),
        ('{"version": 99}', "is not a version 1 cache (found 99)"),
        ("[1, 2]", "is not a version 1 cache (found 'list')"),
        ('{"version": 1, "searches": {"AC": {"saved_at_s": "soon", "matches": []}}}',
         "does not hold lookups as this version writes them"),
        ('{"version": 1, "searches": {"AC": {"saved_at_s": 1, "matches": [{"x": 1}]}}}',
         "does not hold lookups as this version writes them"),
        ('{"version": 1, "details": {"1": {"saved_at_s": 1, "contracts": [{"con_id": 1, '
         '"instrument": {"asset_class": "WAR", "symbol": "X"}}]}}}',
         "unknown asset class"),
    ],
)  # fmt: skip
def test_a_corrupt_cache_file_is_reported_and_ignored(
    tws: FakeTWS,
    client: IBClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    content: str,
    why: str,
) -> None:
    path = tmp_path / "contracts.json"
    path.write_text(content)
    cache = ContractCache(path)
    lookup = ContractLookup(client, cache=cache, min_interval_s=FAST)
    with caplog.at_level(logging.WARNING, logger="ibkrfw.ibkr"):
        found = lookup.search("AC")
    assert len(found) == 3 and len(searches(tws)) == 1  # asked IB instead
    assert cache.problem is not None and why in cache.problem
    assert str(path) in cache.problem and "ignored, and rewritten" in cache.problem
    assert why in caplog.text
    # rewritten with the new answer: a fresh cache reads it without complaint
    fresh = ContractCache(path)
    assert fresh.searched("AC") == found and fresh.problem is None


def test_a_cache_that_cannot_be_written_does_not_lose_the_answer(
    client: IBClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = ContractCache(blocker / "contracts.json")  # its folder is a file
    with caplog.at_level(logging.WARNING, logger="ibkrfw.ibkr"):
        found = ContractLookup(client, cache=cache, min_interval_s=FAST).search("ACRE")
    assert [m.symbol for m in found] == ["ACRE"]
    assert "cannot write the contract cache" in caplog.text


@pytest.mark.parametrize("age", [0, -1, float("nan"), float("inf"), True])
def test_a_cache_age_must_be_positive_seconds(tmp_path: Path, age: float) -> None:
    with pytest.raises(ConfigError, match=r"max_age_s=.*seconds above 0"):
        ContractCache(tmp_path / "c.json", max_age_s=age)


# --- the command -------------------------------------------------------------------------------
def run_cli(
    tws: FakeTWS, tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    from ibkrfw.cli import main

    code = main(["contract", *args, "--port", str(tws.port), "--state-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_lists_matches_as_a_table(
    tws: FakeTWS, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(tws, tmp_path, capsys, "AC")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "CON", "ID", "SYMBOL", "TYPE", "EXCHANGE", "CURRENCY", "DERIVATIVES", "DESCRIPTION",
    ]  # fmt: skip
    assert lines[1].split() == [str(con_id(tws, ACME_NYSE)), "ACME", "STK", "NYSE", "USD", "OPT"]
    assert len(lines) == 4
    assert (tmp_path / "contracts.json").is_file()


def test_the_command_prints_json_that_parses(
    tws: FakeTWS, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(tws, tmp_path, capsys, "E", "--json", "--sec-type", "FUT")
    assert code == 0, err
    assert [(m["symbol"], m["sec_type"], m["con_id"]) for m in json.loads(out)] == [
        ("ES", "FUT", con_id(tws, ES))
    ]
    code, out, err = run_cli(tws, tmp_path, capsys, "ES", "--resolve", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["con_id"] == con_id(tws, ES)
    assert info["instrument"]["multiplier"] == "50" and info["instrument"]["tick_size"] == "0.25"
    assert info["time_zone"] == "America/Chicago" and info["trading_hours"]
    assert "from the contract cache" not in err  # both answers were IB's, just now


def test_the_command_resolves_one_contract(
    tws: FakeTWS, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(tws, tmp_path, capsys, "ACME", "--resolve", "--exchange", "TSE")
    assert code == 0, err
    fields = {line[:15].strip(): line[15:] for line in out.splitlines() if line[:15].strip()}
    assert fields["id"] == "ACME.SMART"
    assert fields["con id"] == str(con_id(tws, ACME_TSE))
    assert fields["exchange"] == "SMART (listed on TSE)"
    assert fields["currency"] == "CAD" and fields["min tick"] == "0.01"
    assert fields["trading hours"] != "(not given)"


def test_the_command_says_an_answer_came_from_the_cache(
    tws: FakeTWS, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "contracts.json"
    run_cli(tws, tmp_path, capsys, "AC")
    data = json.loads(path.read_text())
    data["searches"]["AC"]["saved_at_s"] -= 7200  # two hours ago, from then on
    for match in data["searches"]["AC"]["matches"]:
        match["fetched_at_s"] -= 7200
    path.write_text(json.dumps(data))
    code, out, err = run_cli(tws, tmp_path, capsys, "AC")
    assert code == 0 and "ACRE" in out
    assert "from the contract cache, 2.0 h old (--refresh asks IB again)" in err
    assert len(searches(tws)) == 1
    code, out, err = run_cli(tws, tmp_path, capsys, "AC", "--refresh")
    assert code == 0 and "from the contract cache" not in err
    assert len(searches(tws)) == 2


def test_the_command_reports_a_corrupt_cache_and_goes_on(
    tws: FakeTWS, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "contracts.json").write_text("{oops")
    code, out, err = run_cli(tws, tmp_path, capsys, "ACRE")
    assert code == 0 and "ACRE" in out
    assert f"ibkrfw: warning: the contract cache {tmp_path / 'contracts.json'} is not JSON" in err


def test_the_command_exits_1_on_no_match(
    tws: FakeTWS, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(tws, tmp_path, capsys, "ZZZ", "--sec-type", "STK")
    assert (code, out) == (1, "")
    assert err == "ibkrfw: no match for 'ZZZ' (--sec-type STK)\n"
    code, out, err = run_cli(tws, tmp_path, capsys, "ZZZ", "--resolve")
    assert (code, out) == (1, "")
    assert err.startswith("ibkrfw: error: no match for 'ZZZ': IB knows no contract")
    code, out, err = run_cli(tws, tmp_path, capsys, "--resolve", "--con-id", "999999")
    assert code == 1 and "no contract with con id 999999" in err and "error 200" in err


def test_the_command_lists_an_ambiguous_symbol_and_exits_2(
    tws: FakeTWS, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(tws, tmp_path, capsys, "ACME", "--resolve")
    assert (code, out) == (2, "")
    assert "'ACME' is ambiguous: 2 contracts match" in err
    assert f"pick one, e.g. with --exchange NYSE or --con-id {con_id(tws, ACME_NYSE)}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["", "--resolve"], "argument SEARCH: the search text '' is empty"),
        (["AC", "--sec-type", "STOCK"], "argument --sec-type: 'STOCK' is not one of IB's "
                                        "security types: did you mean --sec-type STK?"),
        (["AC", "--currency", "usd"], "argument --currency: 'usd' is not a currency code"),
        (["--con-id", "abc", "--resolve"], "argument --con-id: 'abc' is not a contract id"),
    ],
)  # fmt: skip
def test_the_command_refuses_wrong_arguments(
    tws: FakeTWS,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    with pytest.raises(SystemExit) as caught:
        run_cli(tws, tmp_path, capsys, *args)
    assert caught.value.code == 2
    assert message in capsys.readouterr().err
    assert searches(tws) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give the text to search for (e.g. ibkrfw contract AAPL)"),
        (["--con-id", "5"], "--con-id 5 names one contract: add --resolve"),
    ],
)
def test_the_command_needs_something_to_look_for(
    tws: FakeTWS,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    code, _out, err = run_cli(tws, tmp_path, capsys, *args)
    assert code == 2 and message in err


def test_the_command_needs_no_mode_even_with_a_live_config(
    tws: FakeTWS, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "ibkrfw.toml"
    config.write_text(
        f'[ibkr]\nport = {tws.port}\nmode = "live"\n[run]\nstate_dir = "{tmp_path}/s"\n'
    )
    from ibkrfw.cli import main

    code = main(["contract", "ACRE", "--config", str(config)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "ACRE" in out
    assert (tmp_path / "s" / "contracts.json").is_file()  # [run] state_dir of the file


# --- IB's security-definition farm -------------------------------------------------------------
def test_a_lookup_waits_while_the_security_definition_farm_is_down(
    tws: FakeTWS, client: IBClient
) -> None:
    # the fake greets a client with 2158 (farm OK): once it is in, it cannot overtake the 2157
    assert tws.wait_for(lambda: client.monitor.farms[Farm.SECURITY_DEFINITION] is True)
    tws.send_error(2157, "Sec-def data farm connection is broken:secdefnj")
    assert tws.wait_for(lambda: client.monitor.farms[Farm.SECURITY_DEFINITION] is False)
    timer = threading.Timer(
        0.3, tws.send_error, (2158, "Sec-def data farm connection is OK:secdefnj")
    )
    began = time.monotonic()
    timer.start()
    try:
        found = ContractLookup(client, min_interval_s=FAST).search("ACRE")
    finally:
        timer.cancel()
    assert [m.symbol for m in found] == ["ACRE"]
    assert time.monotonic() - began >= 0.25
    sent = searches(tws)
    assert len(sent) == 1 and sent[0] >= began + 0.25  # nothing went out while it was down


def test_a_lookup_gives_up_when_the_farm_stays_down(tws: FakeTWS, client: IBClient) -> None:
    # the fake greets a client with 2158 (farm OK): once it is in, it cannot overtake the 2157
    assert tws.wait_for(lambda: client.monitor.farms[Farm.SECURITY_DEFINITION] is True)
    tws.send_error(2157, "Sec-def data farm connection is broken:secdefnj")
    assert tws.wait_for(lambda: client.monitor.farms[Farm.SECURITY_DEFINITION] is False)
    lookup = ContractLookup(client, min_interval_s=FAST, farm_wait=0.2)
    with pytest.raises(RequestError, match=r"security-definition farm has been down \(2157\)"):
        lookup.resolve(con_id=con_id(tws, ACRE))
    assert searches(tws) == [] and tws.messages("in", msg_id=9) == []


def test_the_command_says_when_tws_is_not_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ibkrfw.cli import main

    with FakeTWS() as gone:
        port = gone.port  # a port nothing listens on once it has stopped
    code = main(["contract", "ACME", "--port", str(port), "--state-dir", str(tmp_path / "s")])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.startswith(f"ibkrfw: error: cannot connect to TWS/Gateway at 127.0.0.1:{port}")
    assert not (tmp_path / "s" / "contracts.json").exists()
