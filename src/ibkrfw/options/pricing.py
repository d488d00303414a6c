"""European option prices, greeks and implied volatility: Black-Scholes-Merton and Black-76.

Every function takes numbers or numpy arrays, broadcasts them against each other as numpy does,
and returns float64 arrays (0-dimensional for scalar inputs: ``float(x)`` gives the number).
Arguments are keyword-only, so a strike is never taken for a spot; their units:

- ``spot``, ``forward``, ``strike``, ``price``: in the currency of the quote, per unit of the
  underlying (multiply by the contract's multiplier yourself), all positive;
- ``time_years``: the time to expiry in years (e.g. calendar days / 365), 0 or more;
- ``rate``, ``dividend_yield``: continuously compounded annual rates, as fractions (0.05 for
  5 %), any sign;
- ``vol``: the annualised volatility, as a fraction (0.2 for 20 %), 0 or more.

``right`` is IB's spelling, ``"C"`` or ``"P"`` (``"CALL"`` and ``"PUT"`` are accepted too, as IB
accepts them; nothing else, lower case included), one string or an array of them.

Where ``vol * sqrt(time_years)`` is 0 (at expiry, or with no volatility) the price is the
discounted intrinsic value of the forward (at expiry: ``max(S - K, 0)`` for a call); delta is
the step, 1 or 0 for a call and -1 or 0 for a put, times the discount (the dividend's, or for
Black-76 the rate's; 1 at expiry), half of it exactly at the money; gamma is 0 (at the money it
would be infinite); vega is its limit (0 at expiry); theta and rho are those of the discounted
intrinsic value (rho is 0 at expiry).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from decimal import Decimal
from typing import Final, final

import attrs
import numpy as np
import numpy.typing as npt
from typing_extensions import TypeAliasType

from ibkrfw.errors import ConfigError
from ibkrfw.options._normal import norm_cdf, norm_pdf

__all__ = [
    "Greeks",
    "ImpliedVolError",
    "Numbers",
    "Rights",
    "black76",
    "black76_greeks",
    "black_scholes",
    "black_scholes_greeks",
    "implied_vol_black76",
    "implied_vol_black_scholes",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Numbers = TypeAliasType("Numbers", npt.ArrayLike)
"""A number, or numbers in anything :func:`numpy.asarray` takes (a list, an array, a Series).

Ints, floats and :class:`~decimal.Decimal` values; not bools or strings.
"""
Rights = TypeAliasType("Rights", str | Sequence[str] | npt.NDArray[np.str_])
"""One right or an array of them: ``"C"``, ``"P"``, ``"CALL"`` or ``"PUT"``."""

_RIGHTS: Final = {"C": True, "CALL": True, "P": False, "PUT": False}
_DAYS_PER_YEAR: Final = 365.0
# The implied volatility search: relative accuracy of the time value, most iterations, and the
# largest total volatility (vol * sqrt(T)) tried (beyond it N(d1) is 1 and N(d2) 0 in float64).
_IV_RTOL: Final = 1e-13
_IV_STEP_RTOL: Final = 1e-14
_IV_MAX_ITER: Final = 100
_IV_MAX_TOTAL_VOL: Final = 80.0
_IV_NOISE_ULPS: Final = 16.0
_EPS: Final = float(np.finfo(np.float64).eps)
# Why an implied volatility is NaN: (reason, wording of the strict error)
_IV_REASONS: Final = (
    ("", ""),
    (
        "below lower bound",
        "below the no-arbitrage lower bound {bound!r} (the discounted intrinsic value)",
    ),
    (
        "no time value",
        "the discounted intrinsic value {bound!r} to within rounding, so it holds no "
        "volatility (any low enough one gives it)",
    ),
    (
        "above upper bound",
        "at or above the no-arbitrage upper bound {bound!r} (the discounted forward for a "
        "call, the discounted strike for a put)",
    ),
    ("expired", "for an expired option (time_years 0)"),
    ("no convergence", "so close to its upper bound that the volatility search gave up"),
)


@final
@attrs.frozen(eq=False)
class Greeks:
    """The sensitivities of option prices, one float64 array each, shaped like the prices.

    Attributes:
        delta: Change of the price per 1 of the underlying (the spot for Black-Scholes, the
            futures price for Black-76).
        gamma: Change of delta per 1 of the underlying.
        vega: Change of the price per 1.00 of volatility (from 0.20 to 1.20); see
            :attr:`vega_pct` for per volatility point.
        theta: Change of the price per year that passes (``-dV/dT``, usually negative); see
            :attr:`theta_per_day` for per calendar day.
        rho: Change of the price per 1.00 of the interest rate; see :attr:`rho_pct`. For
            Black-Scholes the spot and the dividend yield stay fixed (the forward moves with
            the rate); for Black-76 the futures price stays fixed, so rho is ``-T * price``.
    """

    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray
    rho: FloatArray

    @property
    def vega_pct(self) -> FloatArray:
        """Change of the price per volatility point (0.01, from 20 % to 21 %)."""
        out: FloatArray = self.vega / 100.0
        return out

    @property
    def theta_per_day(self) -> FloatArray:
        """Change of the price per calendar day that passes (theta / 365)."""
        out: FloatArray = self.theta / _DAYS_PER_YEAR
        return out

    @property
    def rho_pct(self) -> FloatArray:
        """Change of the price per percentage point (0.01) of the interest rate."""
        out: FloatArray = self.rho / 100.0
        return out


class ImpliedVolError(ConfigError):
    """Raise, in ``strict`` mode, when no volatility gives an option price.

    Without ``strict`` the implied volatility functions return NaN for that option instead.

    Args:
        message: What is wrong, naming the price, the bound and what to check.
        index: Where the price is in the broadcast inputs (``()`` for scalars).
        price: The price received.
        reason: ``"below lower bound"``, ``"above upper bound"``, ``"expired"`` or
            ``"no convergence"``.
        bound: The no-arbitrage bound crossed (a price), or None for the other reasons.
    """

    def __init__(
        self,
        message: str,
        *,
        index: tuple[int, ...],
        price: float,
        reason: str,
        bound: float | None,
    ) -> None:
        super().__init__(message)
        self.index = index
        self.price = price
        self.reason = reason
        self.bound = bound


# ---------------------------------------------------------------------------- validation


def _where(index: tuple[int, ...]) -> str:
    return "" if not index else "[" + ", ".join(str(i) for i in index) + "]"


def _first(bad: BoolArray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), bad.shape))


def _floats(func: str, name: str, value: Numbers) -> FloatArray:
    """``value`` as a float64 array, refusing what is not numbers (bools and strings included)."""
    expected = f"{func}: {name} must be a number or an array of numbers"
    if isinstance(value, bool | np.bool_ | str | bytes):
        raise ConfigError(f"{expected}, got {value!r}")
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise ConfigError(f"{expected}, got {value!r} ({exc})") from None
    kind = raw.dtype.kind
    if kind == "O":  # Decimal (the ledger's), Fraction, or a mix: numbers, converted one by one
        flat = raw.reshape(-1)
        for i, item in enumerate(flat):
            if isinstance(item, bool) or not isinstance(item, numbers.Real | Decimal):
                index = tuple(int(j) for j in np.unravel_index(i, raw.shape))
                where = f" at {name}{_where(index)}" if index else ""
                raise ConfigError(f"{expected}, got {item!r}{where}")
        return np.asarray([float(item) for item in flat], dtype=np.float64).reshape(raw.shape)
    if kind not in "fiu":
        raise ConfigError(f"{expected}, got an array of {raw.dtype} ({value!r:.80})")
    return raw.astype(np.float64, copy=False)


def _check(func: str, name: str, values: FloatArray, bad: BoolArray, rule: str, fix: str) -> None:
    if bad.any():
        index = _first(bad)
        got = float(values[index])
        raise ConfigError(f"{func}: {name}{_where(index)} is {got!r}; {rule}: {fix}")


def _positive(func: str, name: str, value: Numbers, fix: str) -> FloatArray:
    values = _floats(func, name, value)
    bad = ~(np.isfinite(values) & (values > 0))
    _check(func, name, values, bad, "it must be a finite number above 0", fix)
    return values


def _non_negative(func: str, name: str, value: Numbers, fix: str) -> FloatArray:
    values = _floats(func, name, value)
    bad = ~(np.isfinite(values) & (values >= 0))
    _check(func, name, values, bad, "it must be a finite number, 0 or more", fix)
    return values


def _finite(func: str, name: str, value: Numbers, fix: str) -> FloatArray:
    values = _floats(func, name, value)
    _check(func, name, values, ~np.isfinite(values), "it must be a finite number", fix)
    return values


_FIX_SPOT: Final = "pass the underlying's price"
_FIX_FORWARD: Final = "pass the futures (forward) price"
_FIX_STRIKE: Final = "pass the option's strike price"
_FIX_TIME: Final = "pass the time to expiry in years (calendar days / 365; 0 at expiry)"
_FIX_VOL: Final = "pass the annualised volatility as a fraction (0.2 for 20 %)"
_FIX_RATE: Final = "pass the continuously compounded annual rate as a fraction (0.05 for 5 %)"
_FIX_YIELD: Final = "pass the continuous annual dividend yield as a fraction (0.02 for 2 %)"
_FIX_PRICE: Final = (
    "pass the option's price per unit of the underlying (not times the multiplier); "
    "drop missing quotes first (e.g. keep price[np.isfinite(price)])"
)


def _is_call(func: str, right: Rights) -> BoolArray:
    accepted = "a right is 'C' or 'P' as IB spells it ('CALL' and 'PUT' are accepted too)"
    if isinstance(right, str):
        if right not in _RIGHTS:
            raise ConfigError(f"{func}: right is {right!r}; {accepted}")
        return np.asarray(_RIGHTS[right])
    try:
        raw = np.asarray(right)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{func}: right must be a string or an array of strings ({exc})"
        ) from None
    if raw.dtype.kind not in "UO":
        raise ConfigError(f"{func}: right must be a string or an array of strings, got {right!r}")
    if raw.dtype.kind == "O":  # a list mixing strings and other things: find the odd one
        for i, item in enumerate(raw.reshape(-1)):
            if not isinstance(item, str):
                index = tuple(int(j) for j in np.unravel_index(i, raw.shape))
                raise ConfigError(f"{func}: right{_where(index)} is {item!r}; {accepted}")
        raw = raw.astype(np.str_)
    calls = (raw == "C") | (raw == "CALL")
    bad = ~(calls | (raw == "P") | (raw == "PUT"))
    if bad.any():
        index = _first(bad)
        raise ConfigError(f"{func}: right{_where(index)} is {str(raw[index])!r}; {accepted}")
    return np.asarray(calls, dtype=np.bool_)


def _broadcast(func: str, **arrays: npt.NDArray[np.generic]) -> list[npt.NDArray[np.generic]]:
    try:
        return list(np.broadcast_arrays(*arrays.values()))
    except ValueError:
        shapes = ", ".join(f"{name} {a.shape}" for name, a in arrays.items())
        raise ConfigError(
            f"{func}: the arguments' shapes do not broadcast together ({shapes}): give arrays "
            "of one shape, or shapes numpy broadcasts (a column of strikes, shape (n, 1), "
            "against a row of spots, shape (m,), gives an (n, m) grid)"
        ) from None


# ---------------------------------------------------------------------------- the formulas


def _out(values: Numbers) -> FloatArray:
    """A float64 array, 0-dimensional for scalars (numpy turns those into np.float64)."""
    return np.asarray(values, dtype=np.float64)


def _sign_of(is_call: FloatArray) -> FloatArray:
    """+1 for a call, -1 for a put, from the broadcast right (1.0 or 0.0)."""
    out: FloatArray = 2.0 * is_call - 1.0
    return out


def _d1_d2(log_moneyness: FloatArray, total_vol: FloatArray) -> tuple[FloatArray, FloatArray]:
    """d1 and d2 from ln(F/K) and vol*sqrt(T); where the latter is 0, +-inf (0 at the money)."""
    live = total_vol > 0
    safe = np.where(live, total_vol, 1.0)
    # the limit as total_vol goes to 0
    step = np.where(log_moneyness > 0, np.inf, np.where(log_moneyness < 0, -np.inf, 0.0))
    d1 = np.where(live, log_moneyness / safe + 0.5 * total_vol, step)
    d2 = np.where(live, d1 - total_vol, step)
    return d1, d2


def _bs_parts(
    func: str,
    right: Rights,
    spot: Numbers,
    strike: Numbers,
    time_years: Numbers,
    rate: Numbers,
    vol: Numbers,
    dividend_yield: Numbers,
) -> tuple[FloatArray, ...]:
    is_call = _is_call(func, right)
    s = _positive(func, "spot", spot, _FIX_SPOT)
    k = _positive(func, "strike", strike, _FIX_STRIKE)
    t = _non_negative(func, "time_years", time_years, _FIX_TIME)
    r = _finite(func, "rate", rate, _FIX_RATE)
    v = _non_negative(func, "vol", vol, _FIX_VOL)
    q = _finite(func, "dividend_yield", dividend_yield, _FIX_YIELD)
    arrays = _broadcast(
        func, right=is_call, spot=s, strike=k, time_years=t, rate=r, vol=v, dividend_yield=q
    )
    return tuple(np.asarray(a, dtype=np.float64) for a in arrays)


def _black_parts(
    func: str,
    right: Rights,
    forward: Numbers,
    strike: Numbers,
    time_years: Numbers,
    rate: Numbers,
    vol: Numbers,
) -> tuple[FloatArray, ...]:
    is_call = _is_call(func, right)
    f = _positive(func, "forward", forward, _FIX_FORWARD)
    k = _positive(func, "strike", strike, _FIX_STRIKE)
    t = _non_negative(func, "time_years", time_years, _FIX_TIME)
    r = _finite(func, "rate", rate, _FIX_RATE)
    v = _non_negative(func, "vol", vol, _FIX_VOL)
    arrays = _broadcast(func, right=is_call, forward=f, strike=k, time_years=t, rate=r, vol=v)
    return tuple(np.asarray(a, dtype=np.float64) for a in arrays)


def _bs_price(
    sign: FloatArray,
    s: FloatArray,
    k: FloatArray,
    t: FloatArray,
    r: FloatArray,
    v: FloatArray,
    q: FloatArray,
) -> tuple[FloatArray, ...]:
    """Price and the pieces the greeks reuse."""
    sqrt_t = np.sqrt(t)
    total_vol = v * sqrt_t
    d1, d2 = _d1_d2(np.log(s / k) + (r - q) * t, total_vol)
    disc_q = np.exp(-q * t)
    disc_r = np.exp(-r * t)
    nd1 = norm_cdf(sign * d1)
    nd2 = norm_cdf(sign * d2)
    price = sign * (s * disc_q * nd1 - k * disc_r * nd2)
    return price, d1, nd1, nd2, disc_q, disc_r, sqrt_t, total_vol


def black_scholes(
    right: Rights,
    *,
    spot: Numbers,
    strike: Numbers,
    time_years: Numbers,
    rate: Numbers,
    vol: Numbers,
    dividend_yield: Numbers = 0.0,
) -> FloatArray:
    """Price European options on a spot with Black-Scholes-Merton.

    The underlying pays a continuous dividend yield (0 by default: Black-Scholes). Inputs
    broadcast together; the module's docstring gives the units and the limits at expiry.

    Args:
        right: ``"C"`` or ``"P"`` (or an array of them).
        spot: The underlying's price.
        strike: The strike price.
        time_years: Time to expiry, in years.
        rate: The risk-free rate, continuously compounded.
        vol: The volatility, annualised.
        dividend_yield: The underlying's continuous dividend yield.

    Returns:
        The option prices, per unit of the underlying.

    Raises:
        ConfigError: if a right is not ``"C"``/``"P"``/``"CALL"``/``"PUT"``, a spot or strike is
            not above 0, a time or volatility is below 0, a value is not a finite number, or the
            shapes do not broadcast; the message names the argument, the value and its place.

    Example:
        >>> round(float(black_scholes("C", spot=60, strike=65, time_years=0.25, rate=0.08,
        ...                           vol=0.30)), 4)
        2.1334
    """
    is_call, s, k, t, r, v, q = _bs_parts(
        "black_scholes", right, spot, strike, time_years, rate, vol, dividend_yield
    )
    return _out(_bs_price(_sign_of(is_call), s, k, t, r, v, q)[0])


def black_scholes_greeks(
    right: Rights,
    *,
    spot: Numbers,
    strike: Numbers,
    time_years: Numbers,
    rate: Numbers,
    vol: Numbers,
    dividend_yield: Numbers = 0.0,
) -> Greeks:
    """Compute the greeks of European options on a spot with Black-Scholes-Merton.

    Same arguments as :func:`black_scholes`. Delta and gamma are per 1 of the spot, vega per
    1.00 of volatility, theta per year (``-dV/dT``), rho per 1.00 of the rate with the spot and
    the dividend yield fixed: :class:`Greeks` converts to per point and per day.

    Returns:
        The greeks, each an array shaped like the prices.

    Raises:
        ConfigError: as :func:`black_scholes`.

    Example:
        >>> g = black_scholes_greeks("P", spot=100, strike=100, time_years=0.5, rate=0.05,
        ...                          vol=0.2)
        >>> round(float(g.delta), 4), round(float(g.vega_pct), 4)
        (-0.4023, 0.2736)
    """
    is_call, s, k, t, r, v, q = _bs_parts(
        "black_scholes_greeks", right, spot, strike, time_years, rate, vol, dividend_yield
    )
    sign = _sign_of(is_call)
    _, d1, nd1, nd2, disc_q, disc_r, sqrt_t, total_vol = _bs_price(sign, s, k, t, r, v, q)
    live = total_vol > 0
    density = norm_pdf(d1)
    with np.errstate(divide="ignore", invalid="ignore"):  # where total_vol is 0: replaced
        gamma = np.where(live, disc_q * density / (s * np.where(live, total_vol, 1.0)), 0.0)
        decay = np.where(live, s * disc_q * density * v / (2.0 * np.where(live, sqrt_t, 1.0)), 0.0)
    return Greeks(  # at the money at expiry, N(d1) = N(0) gives delta its half step
        delta=_out(sign * disc_q * nd1),
        gamma=_out(gamma),
        vega=_out(s * disc_q * density * sqrt_t),
        theta=_out(-decay - sign * r * k * disc_r * nd2 + sign * q * s * disc_q * nd1),
        rho=_out(sign * k * t * disc_r * nd2),
    )


def _black_price(
    sign: FloatArray, f: FloatArray, k: FloatArray, t: FloatArray, r: FloatArray, v: FloatArray
) -> tuple[FloatArray, ...]:
    sqrt_t = np.sqrt(t)
    total_vol = v * sqrt_t
    d1, d2 = _d1_d2(np.log(f / k), total_vol)
    disc = np.exp(-r * t)
    nd1 = norm_cdf(sign * d1)
    nd2 = norm_cdf(sign * d2)
    price = sign * disc * (f * nd1 - k * nd2)
    return price, d1, nd1, disc, sqrt_t, total_vol


def black76(
    right: Rights,
    *,
    forward: Numbers,
    strike: Numbers,
    time_years: Numbers,
    rate: Numbers,
    vol: Numbers,
) -> FloatArray:
    """Price European options on a futures (or forward) price with Black-76.

    The premium is paid at once and discounted at ``rate`` (options on futures such as those on
    ES or CL; IB's futures options are American, which for calls and puts near the money differs
    little from the European price this gives).

    Args:
        right: ``"C"`` or ``"P"`` (or an array of them).
        forward: The futures price.
        strike: The strike price.
        time_years: Time to expiry, in years.
        rate: The rate the premium is discounted at, continuously compounded.
        vol: The futures price's volatility, annualised.

    Returns:
        The option prices, per unit of the underlying.

    Raises:
        ConfigError: as :func:`black_scholes`, for ``forward`` in place of ``spot``.

    Example:
        >>> round(float(black76("P", forward=19, strike=19, time_years=0.75, rate=0.10,
        ...                     vol=0.28)), 4)
        1.7011
    """
    is_call, f, k, t, r, v = _black_parts("black76", right, forward, strike, time_years, rate, vol)
    return _out(_black_price(_sign_of(is_call), f, k, t, r, v)[0])


def black76_greeks(
    right: Rights,
    *,
    forward: Numbers,
    strike: Numbers,
    time_years: Numbers,
    rate: Numbers,
    vol: Numbers,
) -> Greeks:
    """Compute the greeks of European options on a futures price with Black-76.

    Same arguments as :func:`black76`. Delta and gamma are per 1 of the futures price, vega per
    1.00 of volatility, theta per year (``-dV/dT``), rho per 1.00 of the rate with the futures
    price fixed (``-T * price``).

    Returns:
        The greeks, each an array shaped like the prices.

    Raises:
        ConfigError: as :func:`black76`.

    Example:
        >>> g = black76_greeks("C", forward=19, strike=19, time_years=0.75, rate=0.10, vol=0.28)
        >>> round(float(g.delta), 4), round(float(g.rho), 4)
        (0.5086, -1.2758)
    """
    is_call, f, k, t, r, v = _black_parts(
        "black76_greeks", right, forward, strike, time_years, rate, vol
    )
    sign = _sign_of(is_call)
    price, d1, nd1, disc, sqrt_t, total_vol = _black_price(sign, f, k, t, r, v)
    live = total_vol > 0
    density = norm_pdf(d1)
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = np.where(live, disc * density / (f * np.where(live, total_vol, 1.0)), 0.0)
        decay = np.where(live, f * disc * density * v / (2.0 * np.where(live, sqrt_t, 1.0)), 0.0)
    return Greeks(
        delta=_out(sign * disc * nd1),
        gamma=_out(gamma),
        vega=_out(f * disc * density * sqrt_t),
        theta=_out(r * price - decay),
        rho=_out(-t * price),
    )


# ---------------------------------------------------------------------------- implied volatility


def _undiscounted_otm(
    sign: FloatArray, f: FloatArray, k: FloatArray, log_fk: FloatArray, total_vol: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """The undiscounted price of the out-of-the-money option, and its slope in vol*sqrt(T)."""
    d1 = log_fk / total_vol + 0.5 * total_vol
    d2 = d1 - total_vol
    price = sign * (f * norm_cdf(sign * d1) - k * norm_cdf(sign * d2))
    return np.maximum(price, 0.0), f * norm_pdf(d1)


def _solve_total_vol(
    f: FloatArray, k: FloatArray, target: FloatArray
) -> tuple[FloatArray, BoolArray]:
    """Find the vol * sqrt(T) giving the out-of-the-money option the undiscounted ``target``.

    A Newton search on the log of the price, kept inside a bracket that every evaluation
    narrows, and bisecting where Newton would leave it. The out-of-the-money option (a call
    for strikes at or above the forward, a put below) has no intrinsic value to lose digits
    to, and the log of its price is close to linear in the volatility far from the money,
    where the price itself is exponentially flat.

    Returns:
        The total volatility, and whether the search converged (NaN where it did not).
    """
    n = target.shape[0]
    sign = np.where(k >= f, 1.0, -1.0)
    log_fk = np.log(f / k)
    # Corrado and Miller's approximation (from the call price, by parity), good near the
    # money; where it fails, Manaster and Koehler's start: the price's inflection point.
    call = np.where(sign > 0, target, target + (f - k))
    half_gap = call - 0.5 * (f - k)
    with np.errstate(invalid="ignore"):
        guess = (
            math.sqrt(2.0 * math.pi)
            / (f + k)
            * (half_gap + np.sqrt(half_gap * half_gap - (f - k) ** 2 / math.pi))
        )
    inflection = np.sqrt(2.0 * np.abs(log_fk))
    guess = np.where(np.isfinite(guess) & (guess > 0), guess, inflection)
    lo = np.zeros(n)
    hi = np.full(n, np.inf)
    x = np.clip(guess, 1e-8, _IV_MAX_TOTAL_VOL)
    out = np.full(n, np.nan)
    done = np.zeros(n, dtype=np.bool_)
    log_target = np.log(target)
    active = np.arange(n)
    for _ in range(_IV_MAX_ITER):
        if active.size == 0:
            break
        fa, ka, lf, sa, ta = f[active], k[active], log_fk[active], sign[active], target[active]
        xa = x[active]
        with np.errstate(divide="ignore", under="ignore"):
            price, slope = _undiscounted_otm(sa, fa, ka, lf, xa)
        above = price > ta
        lo_a = np.where(above, lo[active], xa)
        hi_a = np.where(above, xa, hi[active])
        lo[active], hi[active] = lo_a, hi_a
        close = np.abs(price - ta) <= _IV_RTOL * ta
        with np.errstate(invalid="ignore"):  # inf - inf while no upper end is known
            narrow = (hi_a - lo_a) <= _IV_STEP_RTOL * hi_a
        narrow &= np.isfinite(hi_a)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            gap = np.log(price) - log_target[active]
            log_slope = slope / price
            # Below the inflection point the log of the price is close to -x^2 / (2 s^2):
            # linear in 1/s^2, where Newton goes straight to the root (in s it crawls).
            inverse = 1.0 / (xa * xa) + 2.0 * gap / (log_slope * xa**3)
            nxt = np.where(
                xa < inflection[active],
                1.0 / np.sqrt(np.where(inverse > 0, inverse, np.nan)),
                xa - gap / log_slope,
            )
            step = nxt - xa
        inside = np.isfinite(nxt) & (nxt > lo_a) & (nxt < hi_a)
        # a step this small is below the rounding of the price itself: take it and stop
        settled = inside & (np.abs(step) <= _IV_STEP_RTOL * xa)
        finished = close | narrow | settled
        out[active[finished]] = np.where(settled, nxt, xa)[finished]
        done[active[finished]] = True
        bisect = np.where(np.isfinite(hi_a), 0.5 * (lo_a + hi_a), 2.0 * xa)
        nxt = np.where(inside, nxt, bisect)
        x[active] = nxt
        keep = ~finished & (nxt <= 2.0 * _IV_MAX_TOTAL_VOL)
        active = active[keep]
    return out, done


def _implied_vol(
    func: str,
    is_call: FloatArray,
    price: FloatArray,
    f: FloatArray,
    k: FloatArray,
    t: FloatArray,
    disc: FloatArray,
    strict: bool,
) -> FloatArray:
    sign = _sign_of(is_call)
    shape = price.shape
    sign_f, price_f, f_f, k_f, t_f, disc_f = (a.reshape(-1) for a in (sign, price, f, k, t, disc))
    undiscounted = price_f / disc_f
    intrinsic = np.maximum(sign_f * (f_f - k_f), 0.0)
    time_value = undiscounted - intrinsic
    # An in-the-money time value is a difference: below a few ulps of the forward or the
    # strike it is rounding, not information about the volatility.
    noise = np.where(intrinsic > 0, _IV_NOISE_ULPS * _EPS * np.maximum(f_f, k_f), 0.0)
    upper = np.where(sign_f > 0, f_f, k_f)
    reason = np.zeros(price_f.shape, dtype=np.int8)  # 0: solvable, else _IV_REASONS' index
    reason[undiscounted >= upper] = 3
    reason[time_value <= noise] = 2
    reason[time_value < -noise] = 1
    reason[t_f == 0] = 4
    result = np.full(price_f.shape, np.nan)
    solve = reason == 0
    if solve.any():
        total_vol, converged = _solve_total_vol(f_f[solve], k_f[solve], time_value[solve])
        result[solve] = total_vol / np.sqrt(t_f[solve])
        reason[np.flatnonzero(solve)[~converged]] = 5
    if strict and reason.any():
        i = int(np.argmax(reason > 0))
        index = tuple(int(j) for j in np.unravel_index(i, shape))
        name, wording = _IV_REASONS[reason[i]]
        bound = float(disc_f[i] * (upper[i] if name == "above upper bound" else intrinsic[i]))
        got = float(price_f[i])
        raise ImpliedVolError(
            f"{func}: price{_where(index)} is {got!r}, {wording.format(bound=bound)}: no "
            "volatility gives that price; check the quote, the right, the strike, the time and "
            "the rates (without strict=True it is NaN)",
            index=index,
            price=got,
            reason=name,
            bound=bound if "bound" in name or name == "no time value" else None,
        )
    return result.reshape(shape)


def implied_vol_black_scholes(
    right: Rights,
    *,
    price: Numbers,
    spot: Numbers,
    strike: Numbers,
    time_years: Numbers,
    rate: Numbers,
    dividend_yield: Numbers = 0.0,
    strict: bool = False,
) -> FloatArray:
    """Find the Black-Scholes-Merton volatility that gives each option its price.

    The search (Newton's method on the log of the out-of-the-money price, from Corrado and
    Miller's approximation, kept inside a bracket that every step narrows, bisecting where
    Newton would leave it) stops when the price it gives matches to 1e-13 relatively, or when
    Newton's step falls below 1e-14 of the volatility (the price's own rounding): priced again
    with :func:`black_scholes`, the volatility gives the price back to about 1e-12 of it.
    Where the time value is a small part of an in-the-money price, the volatility is only as
    precise as the digits the time value keeps.

    A price no volatility gives is NaN, never a wrong number and never an exception half-way
    through an array: at or below the discounted intrinsic value (0 volatility gives exactly
    the intrinsic value of an in-the-money option: its implied volatility is 0.0), at or above
    the upper bound (the discounted forward ``S*exp(-qT)`` for a call, the discounted strike
    for a put), or an expired option (``time_years`` 0). ``strict=True`` raises
    :class:`ImpliedVolError` for the first such price instead, naming it and the bound.

    Args:
        right: ``"C"`` or ``"P"`` (or an array of them).
        price: The option prices, per unit of the underlying.
        spot: The underlying's price.
        strike: The strike price.
        time_years: Time to expiry, in years.
        rate: The risk-free rate, continuously compounded.
        dividend_yield: The underlying's continuous dividend yield.
        strict: Raise for a price no volatility gives, rather than return NaN.

    Returns:
        The annualised volatilities, as fractions.

    Raises:
        ConfigError: for invalid inputs, as :func:`black_scholes` (a price must be above 0).
        ImpliedVolError: with ``strict=True``, for a price outside the no-arbitrage bounds.

    Example:
        >>> iv = implied_vol_black_scholes("C", price=2.1334, spot=60, strike=65,
        ...                                time_years=0.25, rate=0.08)
        >>> round(float(iv), 4)
        0.3
    """
    func = "implied_vol_black_scholes"
    is_call = _is_call(func, right)
    p = _positive(func, "price", price, _FIX_PRICE)
    s = _positive(func, "spot", spot, _FIX_SPOT)
    k = _positive(func, "strike", strike, _FIX_STRIKE)
    t = _non_negative(func, "time_years", time_years, _FIX_TIME)
    r = _finite(func, "rate", rate, _FIX_RATE)
    q = _finite(func, "dividend_yield", dividend_yield, _FIX_YIELD)
    arrays = _broadcast(
        func, right=is_call, price=p, spot=s, strike=k, time_years=t, rate=r, dividend_yield=q
    )
    c, p, s, k, t, r, q = (np.asarray(a, dtype=np.float64) for a in arrays)
    forward = s * np.exp((r - q) * t)
    return _implied_vol(func, c, p, forward, k, t, np.exp(-r * t), strict)


def implied_vol_black76(
    right: Rights,
    *,
    price: Numbers,
    forward: Numbers,
    strike: Numbers,
    time_years: Numbers,
    rate: Numbers,
    strict: bool = False,
) -> FloatArray:
    """Find the Black-76 volatility that gives each option on a futures price its price.

    As :func:`implied_vol_black_scholes`; the upper bound is the discounted futures price for
    a call and the discounted strike for a put.

    Args:
        right: ``"C"`` or ``"P"`` (or an array of them).
        price: The option prices, per unit of the underlying.
        forward: The futures price.
        strike: The strike price.
        time_years: Time to expiry, in years.
        rate: The rate the premium is discounted at, continuously compounded.
        strict: Raise for a price no volatility gives, rather than return NaN.

    Returns:
        The annualised volatilities, as fractions.

    Raises:
        ConfigError: for invalid inputs, as :func:`black76` (a price must be above 0).
        ImpliedVolError: with ``strict=True``, for a price outside the no-arbitrage bounds.

    Example:
        >>> iv = implied_vol_black76(["C", "P"], price=[1.7011, 25.0], forward=19, strike=19,
        ...                          time_years=0.75, rate=0.10)
        >>> [round(float(v), 4) for v in iv]
        [0.28, nan]
    """
    func = "implied_vol_black76"
    is_call = _is_call(func, right)
    p = _positive(func, "price", price, _FIX_PRICE)
    f = _positive(func, "forward", forward, _FIX_FORWARD)
    k = _positive(func, "strike", strike, _FIX_STRIKE)
    t = _non_negative(func, "time_years", time_years, _FIX_TIME)
    r = _finite(func, "rate", rate, _FIX_RATE)
    arrays = _broadcast(func, right=is_call, price=p, forward=f, strike=k, time_years=t, rate=r)
    c, p, f, k, t, r = (np.asarray(a, dtype=np.float64) for a in arrays)
    return _implied_vol(func, c, p, f, k, t, np.exp(-r * t), strict)
