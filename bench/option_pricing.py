"""Option pricing throughput: ibkrfw.options on 1,000,000 European options, and QuantLib's.

Random calls and puts on a spot of 100 (strikes from 50 to 200, 1 day to 2 years, volatility
from 5 % to 100 %, rates from 0 to 6 %, dividend yields from 0 to 4 %), priced in one call
each of :func:`~ibkrfw.options.black_scholes`, :func:`~ibkrfw.options.black_scholes_greeks`
and :func:`~ibkrfw.options.implied_vol_black_scholes` (from the prices just computed), and the
same for Black-76. QuantLib (the reference the tests compare with, in the ``test`` extra)
builds and prices a sample of the same options one at a time with its analytic European
engine, as a Python program would use it (its rates are measured on the sample).

Prints options per second for each (median of the runs).

    python bench/option_pricing.py [--options 1000000] [--runs 3] [--quantlib 20000]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

import numpy as np

from ibkrfw.options import (
    black76,
    black76_greeks,
    black_scholes,
    black_scholes_greeks,
    implied_vol_black76,
    implied_vol_black_scholes,
)


def options(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20241204)
    return {
        "right": np.where(rng.random(n) < 0.5, "C", "P"),
        "spot": np.full(n, 100.0),
        "strike": 100.0 * np.exp(rng.uniform(np.log(0.5), np.log(2.0), n)),
        "time_years": rng.uniform(1 / 365, 2.0, n),
        "rate": rng.uniform(0.0, 0.06, n),
        "vol": rng.uniform(0.05, 1.0, n),
        "dividend_yield": rng.uniform(0.0, 0.04, n),
    }


def rate(work: Callable[[], object], n: int, runs: int) -> float:
    """Options per second: the median of ``runs`` timings of ``work``."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return n / statistics.median(times)


def quantlib_rates(o: dict[str, np.ndarray], n: int) -> tuple[float, float, float]:
    """QuantLib's prices, greeks and implied volatilities per second, one option at a time."""
    import QuantLib as ql  # noqa: N813 (the name QuantLib's own examples use)

    today = ql.Date(4, 12, 2024)
    ql.Settings.instance().evaluationDate = today
    day_count = ql.Actual365Fixed()
    spot, r, q, v = (ql.SimpleQuote(0.0) for _ in range(4))
    curve = ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(r), day_count))
    dividends = ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(q), day_count))
    vols = ql.BlackVolTermStructureHandle(
        ql.BlackConstantVol(today, ql.NullCalendar(), ql.QuoteHandle(v), day_count)
    )
    process = ql.BlackScholesMertonProcess(ql.QuoteHandle(spot), dividends, curve, vols)
    engine = ql.AnalyticEuropeanEngine(process)

    def each(use: Callable[[int, ql.VanillaOption], object]) -> float:
        # one option built, priced and dropped at a time: an option kept alive is an observer
        # of the quotes, and setting a quote would notify every one of them
        start = time.perf_counter()
        for i in range(n):
            spot.setValue(float(o["spot"][i]))
            r.setValue(float(o["rate"][i]))
            q.setValue(float(o["dividend_yield"][i]))
            v.setValue(float(o["vol"][i]))
            kind = ql.Option.Call if o["right"][i] == "C" else ql.Option.Put
            days = max(1, round(float(o["time_years"][i]) * 365))
            option = ql.EuropeanOption(
                ql.PlainVanillaPayoff(kind, float(o["strike"][i])),
                ql.EuropeanExercise(today + days),
            )
            option.setPricingEngine(engine)
            use(i, option)
        return n / (time.perf_counter() - start)

    prices = []
    price_rate = each(lambda i, option: prices.append(option.NPV()))
    greeks_rate = each(
        lambda i, option: (
            (option.delta(), option.gamma(), option.vega(), option.theta(), option.rho())
        )
    )

    def implied(i: int, option: ql.VanillaOption) -> None:
        # QuantLib raises where the price holds no volatility (ibkrfw returns NaN)
        with contextlib.suppress(RuntimeError):
            option.impliedVolatility(prices[i], process, 1e-10, 200, 1e-7, 4.0)

    iv_rate = each(implied)
    return price_rate, greeks_rate, iv_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--options", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quantlib", type=int, default=20_000, help="QuantLib's sample (0: none)")
    args = parser.parse_args()
    n = args.options
    o = options(n)
    bs = {key: value for key, value in o.items() if key != "right"}
    b76 = {key: value for key, value in bs.items() if key not in ("spot", "dividend_yield")}
    b76["forward"] = o["spot"] * np.exp((o["rate"] - o["dividend_yield"]) * o["time_years"])
    bs_prices = black_scholes(o["right"], **bs)
    b76_prices = black76(o["right"], **b76)
    # implied volatility of the prices above 0 (far from the money and close to expiry a price
    # rounds to 0.0, which no volatility is solved for: a price must be above 0)
    quoted = (bs_prices > 0) & (b76_prices > 0)
    iv_bs = {key: value[quoted] for key, value in bs.items() if key != "vol"}
    iv_b76 = {key: value[quoted] for key, value in b76.items() if key != "vol"}
    rights, m = o["right"][quoted], int(quoted.sum())

    rows = [
        ("Black-Scholes prices", rate(lambda: black_scholes(o["right"], **bs), n, args.runs)),
        (
            "Black-Scholes greeks (all five)",
            rate(lambda: black_scholes_greeks(o["right"], **bs), n, args.runs),
        ),
        (
            "Black-Scholes implied vols",
            rate(
                lambda: implied_vol_black_scholes(rights, price=bs_prices[quoted], **iv_bs),
                m,
                args.runs,
            ),
        ),
        ("Black-76 prices", rate(lambda: black76(o["right"], **b76), n, args.runs)),
        (
            "Black-76 greeks (all five)",
            rate(lambda: black76_greeks(o["right"], **b76), n, args.runs),
        ),
        (
            "Black-76 implied vols",
            rate(
                lambda: implied_vol_black76(rights, price=b76_prices[quoted], **iv_b76),
                m,
                args.runs,
            ),
        ),
    ]
    iv = implied_vol_black_scholes(rights, price=bs_prices[quoted], **iv_bs)
    solved = np.isfinite(iv)
    again = black_scholes(
        rights[solved], vol=iv[solved], **{k: v[solved] for k, v in iv_bs.items()}
    )
    error = np.abs(again - bs_prices[quoted][solved]) / np.maximum(1.0, bs_prices[quoted][solved])
    print(f"{n:,} options, {m:,} with a price above 0 for the implied vols")
    for name, per_second in rows:
        print(f"ibkrfw.options {name:<32} {per_second:>14,.0f} /s")
    print(
        f"implied vols solved: {solved.mean():.2%} (the rest: no time value left to solve for); "
        f"round trip price -> vol -> price: max error {error.max():.1e} (relative above 1)"
    )
    if args.quantlib:
        try:
            ql_rows = quantlib_rates(o, min(args.quantlib, n))
        except ImportError:
            print("QuantLib is not installed (pip install QuantLib): no comparison")
            return
        names = ("prices", "greeks (all five)", "implied vols")
        for name, per_second in zip(names, ql_rows, strict=True):
            print(f"QuantLib (one at a time) {name:<22} {per_second:>14,.0f} /s")


if __name__ == "__main__":
    main()
