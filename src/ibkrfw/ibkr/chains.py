"""Option chains: the expiries and strikes IB lists for an underlying (``reqSecDefOptParams``).

IB answers ``reqSecDefOptParams`` with one row per exchange and trading class: the
expirations and the strikes listed there. Not every strike exists at every expiry; a chain
lists what may be asked for, and :meth:`ContractLookup.resolve
<ibkrfw.ibkr.ContractLookup.resolve>` (or an order) finds out whether one contract exists.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, final

import attrs
import pandas as pd

from ibkrfw.errors import ConfigError, DataError
from ibkrfw.model._decimal import float_decimal
from ibkrfw.model.instruments import Option

if TYPE_CHECKING:
    from ibkrfw.ibkr.lookup import ContractLookup

__all__ = ["OptionChain", "option_chains"]

_RIGHTS = ("C", "P")


def _day(value: object, name: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip().replace("-", "")
    try:
        if len(text) != 8 or not text.isdigit():
            raise ValueError(text)
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise ConfigError(
            f"{name}: {value!r} is not a date; give YYYYMMDD or YYYY-MM-DD, e.g. '20261218'"
        ) from None


@final
@attrs.frozen
class OptionChain:
    """The options IB lists on one underlying at one exchange and trading class.

    Args:
        symbol: The underlying's symbol (an option's ``symbol``).
        underlying_con_id: IB's contract id of the underlying.
        exchange: Where these options are listed (``"SMART"`` covers them all).
        trading_class: IB's trading class (``"SPXW"`` for SPX weeklies).
        multiplier: Units of the underlying per contract.
        expirations: The expiry days, ``YYYYMMDD``, in order.
        strikes: The strikes, in order.
        currency: The options' currency.

    Example:
        >>> chain = OptionChain("ACME", 1, "SMART", "ACME", Decimal(100),
        ...                     ("20260116", "20260220"), (Decimal(95), Decimal(100)))
        >>> chain.expiries(days=(0, 30), today="20260101")
        ['20260116']
        >>> [o.id for o in chain.options(rights="C", spot=100, moneyness=(1.0, 1.2))]
        ['ACME.20260116.C100.SMART', 'ACME.20260220.C100.SMART']
    """

    symbol: str
    underlying_con_id: int
    exchange: str
    trading_class: str
    multiplier: Decimal
    expirations: tuple[str, ...]
    strikes: tuple[Decimal, ...]
    currency: str = "USD"

    def expiries(
        self,
        *,
        expiry_from: object = None,
        expiry_to: object = None,
        days: tuple[int, int] | None = None,
        today: object = None,
    ) -> list[str]:
        """The expiries in a window: between two dates, or a number of days from ``today``.

        Args:
            expiry_from: The first expiry day to keep (a date or ``YYYYMMDD``).
            expiry_to: The last one to keep.
            days: ``(least, most)`` days to expiry, counted from ``today``.
            today: The day ``days`` counts from (the machine's date by default).

        Raises:
            ConfigError: for a date that is not one, ``expiry_from`` after ``expiry_to``,
                or ``days`` that is not two whole numbers, least first.
        """
        first = _day(expiry_from, "expiry_from") if expiry_from is not None else dt.date.min
        last = _day(expiry_to, "expiry_to") if expiry_to is not None else dt.date.max
        if first > last:
            raise ConfigError(
                f"expiry_from {first} is after expiry_to {last}: give the first expiry first"
            )
        if days is not None:
            if (
                not isinstance(days, tuple | list)
                or len(days) != 2
                or not all(isinstance(d, int) and not isinstance(d, bool) for d in days)
                or days[0] > days[1]
            ):
                raise ConfigError(
                    f"days: {days!r} is not a window; give (least, most) whole days to "
                    "expiry, e.g. (20, 60)"
                )
            start = _day(today, "today") if today is not None else dt.date.today()
            first = max(first, start + dt.timedelta(days=days[0]))
            last = min(last, start + dt.timedelta(days=days[1]))
        return [e for e in self.expirations if first <= _day(e, "expiry") <= last]

    def frame(
        self,
        *,
        rights: str | Sequence[str] = _RIGHTS,
        spot: float | None = None,
        moneyness: tuple[float, float] | None = None,
        expiry_from: object = None,
        expiry_to: object = None,
        days: tuple[int, int] | None = None,
        today: object = None,
        volatility: float | None = None,
        delta: tuple[float, float] | None = None,
        rate: float = 0.0,
    ) -> pd.DataFrame:
        """The chain as a table, one row per expiry, strike and right, filtered.

        Args:
            rights: ``"C"``, ``"P"`` or both (the default).
            spot: The underlying's price: adds a ``moneyness`` column (strike / spot).
            moneyness: Keep strikes whose strike / spot lies in ``(low, high)``, ends
                included (needs ``spot``).
            expiry_from: See :meth:`expiries`.
            expiry_to: See :meth:`expiries`.
            days: See :meth:`expiries`.
            today: See :meth:`expiries` (and the day deltas are computed on).
            volatility: With ``spot``, adds a ``delta`` column: Black-Scholes at this
                volatility, from ``today``'s close to each expiry's (16:00 both).
            delta: Keep the options whose absolute delta lies in ``(low, high)``, ends
                included (0.2 to 0.4 keeps 20- to 40-delta calls and puts); needs ``spot``
                and ``volatility``.
            rate: The risk-free rate of the deltas.

        Raises:
            ConfigError: for a right that is neither ``"C"`` nor ``"P"``, a spot that is not
                a positive price, ``moneyness`` or ``delta`` without what they need or not
                ``(low, high)``, a volatility that is not positive, or a bad expiry window.
        """
        wanted = _rights(rights)
        strikes = self._strikes(spot, moneyness)
        rows = [
            (expiry, float(strike), right)
            for expiry in self.expiries(
                expiry_from=expiry_from, expiry_to=expiry_to, days=days, today=today
            )
            for strike in strikes
            for right in wanted
        ]
        frame = pd.DataFrame(rows, columns=["expiry", "strike", "right"])
        if spot is not None:
            frame["moneyness"] = (frame["strike"] / float(spot)).round(6)
        if delta is not None and (spot is None or volatility is None):
            raise ConfigError(
                "delta needs spot= and volatility=: the deltas are Black-Scholes on them, "
                "e.g. frame(spot=187.5, volatility=0.25, delta=(0.2, 0.4))"
            )
        if volatility is not None and spot is not None:
            frame["delta"] = self._deltas(frame, spot, volatility, rate, today)
            if delta is not None:
                low, high = _window(delta, "delta", "(0.2, 0.4)")
                size = frame["delta"].abs()
                frame = frame[(size >= low - 1e-12) & (size <= high + 1e-12)]
                frame = frame.reset_index(drop=True)
        return frame

    @staticmethod
    def _deltas(
        frame: pd.DataFrame, spot: float, volatility: float, rate: float, today: object
    ) -> list[float]:
        from ibkrfw.options import black_scholes_greeks

        if isinstance(volatility, bool) or not (
            isinstance(volatility, int | float) and math.isfinite(volatility) and volatility > 0
        ):
            raise ConfigError(
                f"volatility: {volatility!r} is not a volatility; give an annualised fraction, "
                "e.g. 0.25"
            )
        start = _day(today, "today") if today is not None else dt.date.today()
        years = [max((_day(e, "expiry") - start).days, 0) / 365 for e in frame["expiry"].tolist()]
        if not years:
            return []
        greeks = black_scholes_greeks(
            frame["right"].tolist(), spot=spot, strike=frame["strike"].to_numpy(),
            time_years=years, rate=rate, vol=volatility,
        )  # fmt: skip
        return [round(float(d), 6) for d in greeks.delta]

    def options(self, **filters: Any) -> list[Option]:
        """The options of :meth:`frame` (same filters), as :class:`~ibkrfw.Option` instruments."""
        table = self.frame(**filters)
        return [
            Option(
                self.symbol,
                expiry=str(expiry),
                strike=float_decimal(float(strike)),
                right=str(right),
                multiplier=self.multiplier,
                exchange=self.exchange,
                currency=self.currency,
                trading_class=self.trading_class,
            )
            for expiry, strike, right in zip(
                table["expiry"].tolist(),
                table["strike"].tolist(),
                table["right"].tolist(),
                strict=True,
            )
        ]

    def _strikes(self, spot: float | None, moneyness: tuple[float, float] | None) -> list[Decimal]:
        if spot is not None and (
            isinstance(spot, bool)
            or not isinstance(spot, int | float)
            or not math.isfinite(spot)
            or spot <= 0
        ):
            raise ConfigError(f"spot: {spot!r} is not a price; give the underlying's last price")
        if moneyness is None:
            return list(self.strikes)
        if spot is None:
            raise ConfigError(
                "moneyness needs spot=: the underlying's price the strikes are compared with"
            )
        low, high = _window(moneyness, "moneyness", "(0.9, 1.1)")
        return [k for k in self.strikes if low - 1e-12 <= float(k) / spot <= high + 1e-12]

    def __iter__(self) -> Iterator[Option]:
        """Every option of the chain, calls and puts."""
        return iter(self.options())


def _window(value: object, name: str, example: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        low, high = -1.0, -2.0
    if not (math.isfinite(low) and math.isfinite(high) and 0 <= low <= high):
        raise ConfigError(
            f"{name}: {value!r} is not (low, high) with 0 <= low <= high; e.g. {example}"
        )
    return low, high


def _rights(rights: str | Sequence[str]) -> tuple[str, ...]:
    given: Iterable[object] = (rights,) if isinstance(rights, str) else rights
    out: list[str] = []
    for right in given:
        text = str(right).strip().upper() if isinstance(right, str) else ""
        if text in ("C", "CALL"):
            out.append("C")
        elif text in ("P", "PUT"):
            out.append("P")
        else:
            raise ConfigError(f"rights: {right!r} is not a right; give 'C', 'P' or both")
    return tuple(dict.fromkeys(out))


def option_chains(
    lookup: ContractLookup,
    symbol: str,
    *,
    sec_type: str = "STK",
    exchange: str | None = None,
    currency: str | None = None,
    con_id: int | None = None,
) -> list[OptionChain]:
    """Ask IB for the option chains of an underlying (``reqSecDefOptParams``).

    The underlying is resolved first (its contract id: see :meth:`ContractLookup.resolve
    <ibkrfw.ibkr.ContractLookup.resolve>`, whose filters these are); IB then lists one chain
    per exchange and trading class.

    Args:
        lookup: An open contract lookup.
        symbol: The underlying's symbol.
        sec_type: The underlying's security type (``"STK"``; ``"IND"`` for an index).
        exchange: The underlying's primary exchange, when the symbol is ambiguous.
        currency: Its currency, likewise.
        con_id: The underlying's contract id, if known (no search then).

    Raises:
        ContractNotFoundError: if the underlying is not found, or IB lists no options on it.
        AmbiguousContractError: if the symbol names several underlyings.
        RequestError: if IB answers with another error, or not in time.
    """
    from ibkrfw.errors import ContractNotFoundError

    info = lookup.resolve(
        symbol, sec_type=sec_type, exchange=exchange, currency=currency, con_id=con_id
    )
    lookup.ready()
    rows = lookup.client.request(
        "reqSecDefOptParams",
        info.instrument.symbol,
        "",
        sec_type,
        info.con_id,
        rows="securityDefinitionOptionParameter",
        timeout=lookup.timeout,
    )
    chains = [
        OptionChain(
            symbol=info.instrument.symbol,
            underlying_con_id=int(under_con_id),
            exchange=str(exchange_name),
            trading_class=str(trading_class),
            multiplier=_multiplier(multiplier),
            expirations=tuple(sorted(str(e) for e in expirations)),
            strikes=tuple(sorted(float_decimal(float(k)) for k in strikes)),
            currency=info.instrument.currency,
        )
        for exchange_name, under_con_id, trading_class, multiplier, expirations, strikes in rows
    ]
    if not chains or not any(c.expirations and c.strikes for c in chains):
        raise ContractNotFoundError(
            f"IB lists no options on {info.instrument.symbol} (con id {info.con_id})",
            fix="check the symbol and security type (an index is sec_type='IND')",
        )
    return sorted(chains, key=lambda c: (c.exchange != "SMART", c.exchange, c.trading_class))


def _multiplier(value: object) -> Decimal:
    try:
        multiplier = Decimal(str(value))
    except ArithmeticError:
        multiplier = Decimal(0)
    if not multiplier.is_finite() or multiplier <= 0:
        raise DataError(f"IB listed an option chain with multiplier {value!r}: not a number")
    return multiplier
