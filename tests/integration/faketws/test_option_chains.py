"""Option chains and option contracts against the fake TWS, over a real socket (ibapi)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ibkrfw import ConfigError, Option, Stock
from ibkrfw.errors import ContractNotFoundError
from ibkrfw.ibkr import ContractLookup, IBKRConfig, OptionChain, option_chains
from ibkrfw.testing import FakeTWS, bars_frame

ACME = Stock("ACME")
# an option the fake replays, on a strike and an expiry off its synthetic ladder
LISTED = Option("ACME", expiry="20240119", strike="101.5", right="C")
ROWS = [(100, 101, 99, 100), (100.5, 102, 99.5, 101), (101, 103, 98, 102)]
OPTION_ROWS = [(1.5, 1.6, 1.4, 1.5), (1.6, 1.8, 1.5, 1.7), (1.7, 2.2, 1.2, 2.0)]


@pytest.fixture
def tws() -> Iterator[FakeTWS]:
    data = {ACME: bars_frame(ROWS), LISTED: bars_frame(OPTION_ROWS)}
    with FakeTWS(data=data) as server:
        yield server


@pytest.fixture
def lookup(tws: FakeTWS) -> Iterator[ContractLookup]:
    with ContractLookup.open(IBKRConfig(port=tws.port, request_timeout=5)) as opened:
        yield opened


def test_the_chain_lists_expiries_and_strikes_and_makes_options(
    tws: FakeTWS, lookup: ContractLookup
) -> None:
    [chain] = option_chains(lookup, "ACME")
    assert (chain.symbol, chain.exchange, chain.multiplier) == ("ACME", "SMART", Decimal(100))
    assert chain.underlying_con_id == tws.market.con_ids[ACME]
    assert LISTED.expiry in chain.expirations and Decimal("101.5") in chain.strikes
    assert list(chain.expirations) == sorted(chain.expirations)
    assert list(chain.strikes) == sorted(chain.strikes)
    near = chain.frame(rights="C", spot=100, moneyness=(1.0, 1.02), expiry_to=LISTED.expiry)
    assert set(near["right"]) == {"C"}
    assert all(1.0 <= m <= 1.02 for m in near["moneyness"])
    assert LISTED in chain.options(rights="C", spot=100, moneyness=(1.0, 1.02))
    # an option of the chain resolves, by its contract, into the same instrument
    contract_id = tws.market.con_ids[LISTED]
    info = lookup.resolve("ACME", sec_type="OPT", con_id=contract_id)
    assert info.instrument == LISTED
    assert tws.messages("in", msg_id=78)  # reqSecDefOptParams went out


def test_a_chain_of_nothing_and_wrong_filters_say_why(lookup: ContractLookup) -> None:
    with pytest.raises(ContractNotFoundError):
        option_chains(lookup, "ZZZZ")
    [chain] = option_chains(lookup, "ACME")
    with pytest.raises(ConfigError, match="moneyness needs spot="):
        chain.frame(moneyness=(0.9, 1.1))
    with pytest.raises(ConfigError, match="'X' is not a right"):
        chain.frame(rights="X")
    with pytest.raises(ConfigError, match="'2024-13-01' is not a date"):
        chain.frame(expiry_from="2024-13-01")
    with pytest.raises(ConfigError, match="is not a window"):
        chain.expiries(days=(60, 20))
    with pytest.raises(ConfigError, match="is not a price"):
        chain.frame(spot=-1.0)


def test_the_expiry_window_counts_days_from_today() -> None:
    chain = OptionChain(
        "X", 1, "SMART", "X", Decimal(100), ("20260116", "20260220", "20260320"), (Decimal(10),)
    )
    assert chain.expiries(days=(20, 60), today=dt.date(2026, 1, 1)) == ["20260220"]
    assert chain.expiries(expiry_from="2026-02-01") == ["20260220", "20260320"]
    assert len(chain.frame()) == 6 and len(list(chain)) == 6


def run_cli(tws: FakeTWS, tmp_path: Path, capsys: Any, *args: str) -> tuple[int, str, str]:
    from ibkrfw.cli import main

    code = main(["contract", *args, "--port", str(tws.port), "--state-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_lists_a_filtered_chain(tws: FakeTWS, tmp_path: Path, capsys: Any) -> None:
    code, out, _ = run_cli(tws, tmp_path, capsys, "ACME", "--chain", "--right", "P",
                           "--spot", "100", "--moneyness", "0.98,1.02", "--json")  # fmt: skip
    assert code == 0
    [chain] = json.loads(out)
    assert chain["multiplier"] == "100" and chain["options"]
    assert {row["right"] for row in chain["options"]} == {"P"}
    assert all(0.98 <= row["moneyness"] <= 1.02 for row in chain["options"])
    code, out, _ = run_cli(tws, tmp_path, capsys, "ACME", "--chain", "--expiry-to", "20240119")
    assert code == 0 and "ACME options, SMART (class ACME, x100)" in out and "20240119" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--moneyness", "0.9,1.1", "--spot", "100"], "--spot filters an option chain"),
        (["--chain", "--moneyness", "0.9,1.1"], "--moneyness needs --spot"),
        (["--chain", "--resolve"], "--chain and --resolve are two answers"),
    ],
)
def test_the_command_refuses_chain_filters_that_cannot_apply(
    tws: FakeTWS, tmp_path: Path, capsys: Any, args: list[str], message: str
) -> None:
    code, _, err = run_cli(tws, tmp_path, capsys, "ACME", *args)
    assert code == 2 and message in err


def test_the_command_refuses_a_backwards_window(tws: FakeTWS, tmp_path: Path, capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_:
        run_cli(tws, tmp_path, capsys, "ACME", "--chain", "--days", "60,20")
    assert exit_.value.code == 2
    assert "'60,20' is not LEAST,MOST days to expiry" in capsys.readouterr().err


def test_an_option_trades_live_with_its_multiplier_and_reconciles(tws: FakeTWS) -> None:
    """Buy two contracts through IBKRBroker; the fake, the engine and a reconciliation agree."""
    from ibkrfw import OrderRequest, Side
    from ibkrfw.testing import LiveSession, ScriptedStrategy

    def buy(ctx: Any, bar: Any) -> None:
        if bar.instrument == LISTED:
            ctx.submit(OrderRequest(LISTED, Side.BUY, 2))

    strategy = ScriptedStrategy({0: buy, 1: buy})  # whichever bar of the first step is LISTED's
    with LiveSession(strategy, tws) as session:
        session.step(3)
        session.broker.reconcile()
        result = session.stop()
    [fill] = result.fill_list
    assert (fill.instrument, fill.quantity, fill.price) == (LISTED, Decimal(2), Decimal("1.6"))
    held = tws.market.portfolio.position(LISTED)
    assert held.quantity == 2
    assert float(tws.market.portfolio.cash) == pytest.approx(1_000_000 - 2 * 100 * 1.6)
    assert result.positions.iloc[-1][LISTED.id] == 2
    reconciled = [e for e in session.engine.notices if type(e).__name__ == "Reconciled"]
    assert reconciled and all(e.resolution == "agreed" for e in reconciled)
    # the IB contract the broker sent names the option: strike, right, expiry, multiplier
    [order] = [r.fields for r in tws.messages("in", msg_id=3)]
    assert ("OPT" in order) and ("101.5" in order) and ("C" in order) and ("20240119" in order)


def test_option_quotes_carry_the_model_volatility_and_greeks(tws: FakeTWS, ready: Any) -> None:
    """tickOptionComputation as TWS sends it: each price's volatility, the model's greeks."""
    from ibkrfw.options import black_scholes, years_to_expiry

    client = ready()
    contract = client_contract(tws, LISTED)
    client.reqMktData(4, contract, "", False, False, [])
    tws.step()  # ACME closes at 100, the call at 1.50
    ticks = {}
    for _ in range(4):
        args = client.expect("tickOptionComputation", a0=4)
        ticks[args[1]] = args[2:]
    assert sorted(ticks) == [10, 11, 12, 13]  # bid, ask, last, model
    vol, delta, price, _, gamma, vega, theta, spot = ticks[12]
    assert spot == 100.0 and price == 1.5 and 0 < delta < 1 and gamma > 0
    assert vega > 0 and theta < 0  # per volatility point and per day, IB's units
    years = years_to_expiry(LISTED, tws.market.clock.now_ns())
    again = black_scholes("C", spot=100.0, strike=101.5, time_years=years, rate=0.0, vol=vol)
    assert float(again) == pytest.approx(1.5, abs=1e-8)  # the volatility gives the price back


def client_contract(tws: FakeTWS, option: Option) -> Any:
    from ibkrfw.ibkr import to_ib_contract

    contract = to_ib_contract(option)
    contract.conId = tws.market.con_ids[option]
    return contract


def test_the_chain_filters_by_delta_at_a_volatility() -> None:
    from ibkrfw.options import black_scholes_greeks

    chain = OptionChain(
        "X", 1, "SMART", "X", Decimal(100), ("20260220",),
        tuple(Decimal(k) for k in range(80, 125, 5)),
    )  # fmt: skip
    table = chain.frame(spot=100, volatility=0.3, delta=(0.2, 0.4), today="20260121")
    assert len(table) and set(table["right"]) == {"C", "P"}
    assert all(0.2 <= abs(d) <= 0.4 for d in table["delta"])
    years = 30 / 365  # 2026-01-21 to 2026-02-20, close to close
    for strike, right, delta in zip(table["strike"], table["right"], table["delta"], strict=True):
        expected = black_scholes_greeks(
            right, spot=100, strike=strike, time_years=years, rate=0.0, vol=0.3
        ).delta
        assert delta == pytest.approx(float(expected), abs=1e-6)
    with pytest.raises(ConfigError, match="delta needs spot= and volatility="):
        chain.frame(spot=100, delta=(0.2, 0.4))
    with pytest.raises(ConfigError, match="is not a volatility"):
        chain.frame(spot=100, volatility=-0.3)
    with pytest.raises(ConfigError, match=r"delta: \(0.4, 0.2\) is not \(low, high\)"):
        chain.frame(spot=100, volatility=0.3, delta=(0.4, 0.2))


def test_the_command_wants_spot_and_volatility_for_deltas(
    tws: FakeTWS, tmp_path: Path, capsys: Any
) -> None:
    code, _, err = run_cli(tws, tmp_path, capsys, "ACME", "--chain", "--delta", "0.2,0.4")
    assert code == 2 and "--delta needs --spot and --volatility" in err
    code, out, _ = run_cli(tws, tmp_path, capsys, "ACME", "--chain", "--spot", "100",
                           "--volatility", "0.3", "--json")  # fmt: skip
    assert code == 0 and "delta" in json.loads(out)[0]["options"][0]


def test_a_strategy_reads_ibs_option_model_live(tws: FakeTWS) -> None:
    """quotes=True: the fake's option computations reach on_event and ctx.greeks."""
    import time

    from ibkrfw import GreeksReceived
    from ibkrfw.testing import LiveSession, ScriptedStrategy

    seen: list[Any] = []
    refused: list[str] = []

    class Watch(ScriptedStrategy):
        def on_event(self, ctx: Any, event: Any) -> None:
            if isinstance(event, GreeksReceived):
                seen.append((event.greeks.source, ctx.greeks(LISTED)))
                for wrong in ((LISTED, "mid"), (Stock("NOPE"), "model")):
                    try:
                        ctx.greeks(*wrong)
                    except ConfigError as exc:
                        refused.append(str(exc))

    with LiveSession(Watch(), tws, quotes=True) as session:
        session.step(1)
        deadline = time.monotonic() + 10
        while len(seen) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        session.stop()
    assert {source for source, _ in seen} == {"bid", "ask", "last", "model"}
    model = next(greeks for source, greeks in seen if source == "model")
    assert model is not None and model.instrument == LISTED and model.source == "model"
    assert model.underlying_price == 100.0 and 0 < (model.delta or 0) < 1
    assert model.vega is not None and model.vega > 0 and (model.theta or 0) < 0
    assert session.feed.greeks >= 4
    assert "give 'model', 'bid', 'ask' or 'last'" in refused[0] and "NOPE" in refused[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--moneyness", "0.9"], "'0.9' is not LOW,HIGH with 0 <= LOW <= HIGH: e.g. --moneyness"),
        (["--delta", "0.2,1.4"], "'0.2,1.4' is not LOW,HIGH with 0 <= LOW <= HIGH <= 1"),
        (["--volatility", "-0.3"], "'-0.3' is not a volatility"),
        (["--spot", "nan"], "'nan' is not a price"),
    ],
)
def test_the_command_refuses_a_malformed_chain_filter(
    tws: FakeTWS, tmp_path: Path, capsys: Any, args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        run_cli(tws, tmp_path, capsys, "ACME", "--chain", *args)
    assert exit_.value.code == 2 and message in capsys.readouterr().err
