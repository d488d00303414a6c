"""IB algo parameters: IB's names and ranges, checked when built; the order types they work."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ibkrfw import Adaptive, ArrivalPrice, OrderRequest, Stock, Twap, Vwap
from ibkrfw.errors import OrderError
from ibkrfw.model import algo_from_params, build_request, check_request
from ibkrfw.model.orders import OrderType

ACME = Stock("ACME")


def test_algo_params_are_ibs_tags_and_values() -> None:
    assert Adaptive().params() == (("adaptivePriority", "Normal"),)
    assert Vwap(0.2, "09:30:00 US/Eastern", no_take_liq=True).params() == (
        ("maxPctVol", "0.2"),
        ("startTime", "09:30:00 US/Eastern"),
        ("endTime", ""),
        ("allowPastEndTime", "0"),
        ("noTakeLiq", "1"),
    )
    assert Twap("Matching Last").params()[0] == ("strategyType", "Matching Last")
    assert ArrivalPrice(0.5, "Aggressive", force_completion=True).params() == (
        ("maxPctVol", "0.5"),
        ("riskAversion", "Aggressive"),
        ("startTime", ""),
        ("endTime", ""),
        ("forceCompletion", "1"),
        ("allowPastEndTime", "0"),
    )
    strategies = [a.strategy for a in (Adaptive(), Vwap(), Twap(), ArrivalPrice())]
    assert strategies == ["Adaptive", "Vwap", "Twap", "ArrivalPx"]


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: Adaptive("Fast"), "Adaptive(priority=...) must be one of 'Urgent'"),
        (lambda: Vwap(0.6), "between 0.01 and 0.5 (IB's range; 0.1 is 10%), got 0.6"),
        (lambda: Vwap(0.005), "got 0.005"),
        (lambda: ArrivalPrice(0.005), "ArrivalPrice(max_pct_vol=...) is a fraction of the volume "),
        (lambda: ArrivalPrice(risk_aversion="Calm"), "'Get Done', 'Aggressive'"),
        (lambda: Twap("Fast"), "Twap(strategy_type=...) must be one of 'Marketable'"),
        (lambda: Vwap(end_time="9:30"), "must be 'HH:MM:SS Zone' with an IANA time zone"),
        (lambda: Vwap(start_time="09:30:00"), "got '09:30:00'"),
        (lambda: Twap(end_time="09:30:00 Mars/Olympus"), "Mars/Olympus"),
        (lambda: Vwap(start_time=930), "must be a str 'HH:MM:SS Zone'"),
        (lambda: Vwap(no_take_liq=1), "Vwap(no_take_liq=...) must be True or False, got int 1"),
        (lambda: Vwap(float("nan")), "Vwap.max_pct_vol must be finite"),
    ],
)
def test_an_algo_out_of_ibs_range_is_an_order_error_naming_it(build: object, words: str) -> None:
    with pytest.raises(OrderError) as caught:
        build()  # type: ignore[operator]
    assert words in str(caught.value)


def test_an_order_takes_only_an_algo_object() -> None:
    with pytest.raises(OrderError, match="algo must be Adaptive"):
        OrderRequest.market(ACME, "BUY", 1, algo="Vwap")
    request, why = build_request(ACME, "BUY", 1, {"algo": "Vwap"})
    assert why is not None and "algo must be Adaptive" in why and request.algo is None


@pytest.mark.parametrize("kind", [OrderType.STOP, OrderType.STOP_LIMIT, OrderType.MARKET_ON_CLOSE])
def test_an_algo_on_an_order_type_it_cannot_work_is_refused(kind: OrderType) -> None:
    request = OrderRequest(
        ACME, "BUY", 10, kind, limit_price=Decimal(100), stop_price=Decimal(100), algo=Vwap()
    )
    why = check_request(request)
    assert why is not None and why.startswith("IB's Vwap algo works MARKET and LIMIT orders")


def test_an_algo_on_a_market_or_limit_order_is_valid() -> None:
    assert check_request(OrderRequest.market(ACME, "BUY", 10, algo=Twap())) is None
    assert check_request(OrderRequest.limit(ACME, "BUY", 10, 99, algo=Adaptive())) is None


def test_algo_from_params_reads_back_what_params_give() -> None:
    for algo in (Adaptive("Urgent"), Vwap(0.3, allow_past_end_time=True), Twap(), ArrivalPrice()):
        assert algo_from_params(algo.strategy, algo.params()) == algo
    assert algo_from_params("", []) is None
    assert algo_from_params("Vwap", []) == Vwap()  # IB's defaults are the class's


def test_algo_from_params_refuses_what_the_model_does_not_have() -> None:
    with pytest.raises(OrderError, match="IB algo 'PctVol' has no model counterpart"):
        algo_from_params("PctVol", [])
    with pytest.raises(OrderError, match="no parameter 'noTakeLiq'"):
        algo_from_params("Twap", [("noTakeLiq", "1")])
    with pytest.raises(OrderError, match="must be 0 or 1, got 'yes'"):
        algo_from_params("Vwap", [("noTakeLiq", "yes")])
