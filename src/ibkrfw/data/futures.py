"""Futures over time: roll rules, roll schedules and continuous series for research.

A futures contract lives a few months; a strategy that trades "the future" holds one contract
after another, *rolling* from the front contract to the next before the front expires. Given a
chain of contracts and their bars, a :class:`RollRule` decides the roll days
(:func:`roll_schedule`), and :func:`continuous_series` strings the contracts' bars into one
series, back-adjusted so that it has no jump at a roll.

The bars of each contract are a DataFrame as the feeds take them: a time-zone-aware
``DatetimeIndex`` (sorted, unique) and the columns ``open``, ``high``, ``low``, ``close``,
``volume``, and optionally ``open_interest``. IB's historical bars carry no open interest (it
is a market-data tick, 588, of the current day only): a rule on open interest needs it from
another source, and says so when it is missing.
"""

from __future__ import annotations

import abc
import itertools
import math
from collections.abc import Mapping
from typing import Final, Literal, final

import attrs
import numpy as np
import pandas as pd
from typing_extensions import override

from ibkrfw.errors import ConfigError, DataError
from ibkrfw.model.instruments import Future

__all__ = [
    "ADJUSTMENTS",
    "DaysBeforeExpiry",
    "Roll",
    "RollRule",
    "VolumeCrossover",
    "continuous_series",
    "roll_schedule",
    "synthetic_future_bars",
]

ADJUSTMENTS: Final = ("difference", "ratio", "none")
"""The back-adjustments :func:`~ibkrfw.data.continuous_series` makes."""

_PRICES: Final = ("open", "high", "low", "close")


@final
@attrs.frozen
class Roll:
    """One roll: from the bar at ``timestamp`` on, the series holds ``to_contract``.

    The gap is measured on ``measured_at``, the last bar held in the front contract, on which
    both contracts traded.

    Args:
        timestamp: The first bar of the new contract (the roll bar), UTC.
        measured_at: The last bar of the old contract, on which the gap is measured, UTC.
        from_contract: The contract rolled out of.
        to_contract: The contract rolled into.
        from_close: The old contract's close on ``measured_at``.
        to_close: The new contract's close on ``measured_at``.
    """

    timestamp: pd.Timestamp
    measured_at: pd.Timestamp
    from_contract: Future
    to_contract: Future
    from_close: float
    to_close: float

    @property
    def gap(self) -> float:
        """The new contract's close minus the old one's, on ``measured_at``."""
        return self.to_close - self.from_close

    @property
    def ratio(self) -> float:
        """The new contract's close over the old one's, on ``measured_at``."""
        return self.to_close / self.from_close


class RollRule(abc.ABC):
    """When to roll from one contract to the next: subclass it to write your own rule.

    :func:`roll_schedule` calls :meth:`roll_at` with the bars both contracts have in common
    from the day the front contract became the one held.
    """

    @abc.abstractmethod
    def roll_at(
        self, front: Future, front_bars: pd.DataFrame, nxt: Future, next_bars: pd.DataFrame
    ) -> int | None:
        """Return the position of the roll bar in the common bars, or None for no roll.

        Args:
            front: The contract held.
            front_bars: Its bars, on the timestamps both contracts have (at least two).
            nxt: The next contract.
            next_bars: Its bars, on the same timestamps.

        Returns:
            The position ``i`` (1 or more) of the first bar to hold ``nxt``: the gap is
            measured on bar ``i - 1``. None when the rule does not fire on these bars;
            :func:`roll_schedule` then rolls on the last common bar.
        """


@final
@attrs.frozen
class DaysBeforeExpiry(RollRule):
    """Roll on the first bar that is ``days`` calendar days or fewer before the last trading day.

    Needs each front contract's last trading day (its ``last_trade_date``: contracts from IB
    have it).

    Args:
        days: Calendar days before the last trading day (0: on the day itself).

    Raises:
        ConfigError: if ``days`` is not a whole number, 0 or more.

    Example:
        >>> DaysBeforeExpiry(5)
        DaysBeforeExpiry(days=5)
    """

    days: int = attrs.field()

    @days.validator
    def _check(self, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(
                f"DaysBeforeExpiry(days={value!r}): give a whole number of calendar days, "
                "0 or more (5 rolls five days before the last trading day)"
            )

    @override
    def roll_at(
        self, front: Future, front_bars: pd.DataFrame, nxt: Future, next_bars: pd.DataFrame
    ) -> int | None:
        last = front.last_trade_day()  # raises, naming the contract, when unknown
        days = pd.DatetimeIndex(front_bars.index).tz_convert(front.timezone).date
        for i in range(1, len(days)):
            if (last - days[i]).days <= self.days:
                return i
        return None


@final
@attrs.frozen
class VolumeCrossover(RollRule):
    """Roll once the next contract's volume (or open interest) exceeds the front's.

    The roll bar is the one after ``days`` consecutive bars on which the next contract's
    ``column`` was greater than the front's: the decision uses only bars already closed.

    Args:
        days: Consecutive bars the next contract must lead on (1 or more).
        column: ``"volume"`` or ``"open_interest"`` (which IB's historical bars lack: the
            bars must carry it from elsewhere).

    Raises:
        ConfigError: if ``days`` is not a whole number of 1 or more, or ``column`` is neither.

    Example:
        >>> VolumeCrossover(days=2)
        VolumeCrossover(days=2, column='volume')
    """

    days: int = attrs.field(default=1)
    column: Literal["volume", "open_interest"] = attrs.field(default="volume")

    @days.validator
    def _check_days(self, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(
                f"VolumeCrossover(days={value!r}): give a whole number of bars, 1 or more"
            )

    @column.validator
    def _check_column(self, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in ("volume", "open_interest"):
            raise ConfigError(
                f"VolumeCrossover(column={value!r}): give 'volume' or 'open_interest'"
            )

    @override
    def roll_at(
        self, front: Future, front_bars: pd.DataFrame, nxt: Future, next_bars: pd.DataFrame
    ) -> int | None:
        for bars, contract in ((front_bars, front), (next_bars, nxt)):
            if self.column not in bars.columns:
                raise DataError(
                    f"VolumeCrossover(column={self.column!r}): the bars of {contract.id} have "
                    f"no {self.column!r} column (IB's historical bars carry no open interest); "
                    "add it from another source, or roll on 'volume'"
                )
        ahead = next_bars[self.column].to_numpy(float) > front_bars[self.column].to_numpy(float)
        run = 0
        for i, leads in enumerate(ahead[:-1]):
            run = run + 1 if leads else 0
            if run >= self.days:
                return i + 1
        return None


def _checked(contract: object, bars: object) -> tuple[Future, pd.DataFrame]:
    if not isinstance(contract, Future):
        raise ConfigError(
            f"futures chain: {contract!r} is not a Future; give a mapping of Future to its bars"
        )
    if not isinstance(bars, pd.DataFrame):
        raise DataError(f"bars of {contract.id}: give a DataFrame, got {type(bars).__name__}")
    index = bars.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise DataError(
            f"bars of {contract.id}: the index must be time-zone-aware timestamps; use "
            "df.set_index('timestamp') and tz_localize the times"
        )
    if not (index.is_monotonic_increasing and index.is_unique):
        raise DataError(f"bars of {contract.id}: the timestamps must increase, without repeats")
    missing = [c for c in (*_PRICES, "volume") if c not in bars.columns]
    if missing:
        raise DataError(
            f"bars of {contract.id}: no column(s) {missing}; expected {[*_PRICES, 'volume']}"
        )
    if len(bars) == 0:
        raise DataError(f"bars of {contract.id}: no bars")
    return contract, bars.set_axis(index.tz_convert("UTC"))


def _chain(contracts_bars: Mapping[Future, pd.DataFrame]) -> list[tuple[Future, pd.DataFrame]]:
    if not isinstance(contracts_bars, Mapping) or len(contracts_bars) < 1:
        raise ConfigError(
            "futures chain: give a mapping of each Future to its bars (one contract at least)"
        )
    chain = sorted(
        (_checked(c, b) for c, b in contracts_bars.items()),
        key=lambda cb: (cb[0].contract_month, cb[0].expiry),
    )
    first = chain[0][0]
    for contract, _ in chain[1:]:
        if (contract.symbol, contract.currency) != (first.symbol, first.currency):
            raise ConfigError(
                f"futures chain: {contract.id} is not of the same future as {first.id}; "
                "give the contracts of one symbol and currency"
            )
    for (a, _), (b, _) in itertools.pairwise(chain):
        # weeklies share a contract month (VX): told apart by their last trading days
        if a.contract_month == b.contract_month and (
            not a.last_trade_date or a.last_trade_date == b.last_trade_date
        ):
            raise ConfigError(
                f"futures chain: {a.id} and {b.id} may be the same contract (month "
                f"{a.contract_month}); give one contract per month, or each one's last trading "
                "day (last_trade_date) for contracts that share a month"
            )
    return chain


def roll_schedule(contracts_bars: Mapping[Future, pd.DataFrame], rule: RollRule) -> list[Roll]:
    """Return the rolls ``rule`` makes along a chain of contracts, oldest first.

    Contracts are taken in the order of their contract months. Each roll is decided on the
    bars both contracts have from the day the front became the one held; when the rule does
    not fire there, the roll is on the last bar both have, so that no contract is held past
    its data.

    Args:
        contracts_bars: Each contract and its bars (see the module's layout).
        rule: When to roll.

    Raises:
        ConfigError: if the chain mixes futures or months, or a contract lacks what the rule
            needs (a last trading day).
        DataError: if bars are malformed, or two consecutive contracts have fewer than two
            bars in common (the gap cannot be measured).
    """
    if not isinstance(rule, RollRule):
        raise ConfigError(
            f"roll_schedule(rule={rule!r}): give a RollRule, e.g. DaysBeforeExpiry(5) or "
            "VolumeCrossover(days=2)"
        )
    chain = _chain(contracts_bars)
    rolls: list[Roll] = []
    held_from = chain[0][1].index[0]
    for (front, front_bars), (nxt, next_bars) in itertools.pairwise(chain):
        common = front_bars.index.intersection(next_bars.index)
        common = common[common >= held_from]
        if len(common) < 2:
            raise DataError(
                f"futures chain: {front.id} and {nxt.id} have {len(common)} bar(s) in common "
                f"from {held_from}; a roll needs two (one to measure the gap, one to roll on): "
                "give bars where the contracts overlap"
            )
        f_common, n_common = front_bars.loc[common], next_bars.loc[common]
        at = rule.roll_at(front, f_common, nxt, n_common)
        if at is None:
            at = len(common) - 1
        if isinstance(at, bool) or not isinstance(at, int) or not 1 <= at < len(common):
            raise ConfigError(
                f"{type(rule).__name__}.roll_at returned {at!r}: give a position from 1 to "
                f"{len(common) - 1} in the common bars, or None"
            )
        measured = common[at - 1]
        from_close, to_close = (
            float(f_common["close"].iloc[at - 1]),
            float(n_common["close"].iloc[at - 1]),
        )
        if not (math.isfinite(from_close) and math.isfinite(to_close)):
            raise DataError(
                f"futures chain: the close of {front.id} ({from_close!r}) or of {nxt.id} "
                f"({to_close!r}) on {measured}, where the roll's gap is measured, is not a "
                "number; clean the bars first (ibkrfw.data.clean_bars)"
            )
        rolls.append(
            Roll(
                timestamp=common[at],
                measured_at=measured,
                from_contract=front,
                to_contract=nxt,
                from_close=from_close,
                to_close=to_close,
            )
        )
        held_from = common[at]
    return rolls


def continuous_series(
    contracts_bars: Mapping[Future, pd.DataFrame],
    rule: RollRule,
    adjust: Literal["difference", "ratio", "none"] = "difference",
) -> pd.DataFrame:
    """Return one continuous series of a chain of contracts, rolled by ``rule``.

    The series holds each contract from its roll bar to the bar before the next roll. Earlier
    bars are back-adjusted so that the series has no jump at a roll, the latest contract's
    prices staying as they are:

    - ``"difference"`` adds each roll's gap (the new contract's close minus the old one's, on
      the last bar held in the old one) to every bar before it: price *changes* are those of
      the contract held, so P&L in points is right; old prices can turn negative, and
      percentage returns are distorted.
    - ``"ratio"`` multiplies every bar before a roll by its ratio: *returns* are those of
      the contract held, prices stay positive; point changes are scaled.
    - ``"none"`` leaves prices as traded: a jump at each roll.

    Args:
        contracts_bars: Each contract and its bars (see the module's layout).
        rule: When to roll (:func:`roll_schedule`).
        adjust: ``"difference"``, ``"ratio"`` or ``"none"``.

    Returns:
        The bars in the feeds' layout, indexed by UTC ``timestamp``: ``open``, ``high``,
        ``low``, ``close``, ``volume`` (the held contract's), ``open_interest`` when every
        contract has it, ``contract`` (the held contract's id) and ``roll`` (True on each roll
        bar).

    Raises:
        ConfigError: for an unknown ``adjust``, or as :func:`roll_schedule` does.
        DataError: as :func:`roll_schedule` does, or for a close that is not a positive
            number on a bar a ratio is measured on.

    Example:
        >>> import pandas as pd
        >>> from ibkrfw import Future
        >>> days = pd.date_range("2026-12-01 21:00", periods=4, tz="UTC")  # daily closes
        >>> def bars(closes: list[float]) -> pd.DataFrame:
        ...     return pd.DataFrame({"open": closes, "high": closes, "low": closes,
        ...                          "close": closes, "volume": 1.0}, index=days)
        >>> dec = Future("ES", expiry="20261218", exchange="CME")
        >>> mar = Future("ES", expiry="20270319", exchange="CME")
        >>> series = continuous_series(
        ...     {dec: bars([100, 101, 102, 103]), mar: bars([110, 111, 112, 113])},
        ...     DaysBeforeExpiry(15),
        ... )
        >>> series["close"].tolist(), series["roll"].tolist()
        ([110.0, 111.0, 112.0, 113.0], [False, False, True, False])
        >>> series["contract"].tolist()[1:3]
        ['ES.20261218.CME', 'ES.20270319.CME']
    """
    if adjust not in ADJUSTMENTS:
        raise ConfigError(
            f"continuous_series(adjust={adjust!r}): give one of {', '.join(map(repr, ADJUSTMENTS))}"
        )
    rolls = roll_schedule(contracts_bars, rule)
    chain = _chain(contracts_bars)
    with_oi = all("open_interest" in bars.columns for _, bars in chain)
    columns = [*_PRICES, "volume", *(["open_interest"] if with_oi else [])]
    starts = [chain[0][1].index[0], *(r.timestamp for r in rolls)]
    ends = [r.timestamp for r in rolls] + [None]
    pieces = []
    for (contract, bars), start, end in zip(chain, starts, ends, strict=True):
        held = bars.loc[
            (bars.index >= start) & ((bars.index < end) if end is not None else True), columns
        ]
        held = held.astype(float)
        held["contract"] = contract.id
        pieces.append(held)
    series = pd.concat(pieces)
    series.index.name = "timestamp"
    series["roll"] = series.index.isin(pd.DatetimeIndex([r.timestamp for r in rolls]))
    if adjust != "none" and rolls:
        prices = series[list(_PRICES)].to_numpy(float, copy=True)
        times = series.index
        if adjust == "difference":
            shift = np.zeros(len(series))
            for roll in rolls:
                shift[times < roll.timestamp] += roll.gap
            prices += shift[:, None]
        else:
            factor = np.ones(len(series))
            for roll in rolls:
                if not (roll.from_close > 0 and roll.to_close > 0):
                    raise DataError(
                        f"continuous_series(adjust='ratio'): the closes of {roll.from_contract.id} "
                        f"({roll.from_close!r}) and {roll.to_contract.id} ({roll.to_close!r}) on "
                        f"{roll.measured_at} must be positive to take their ratio; use "
                        "adjust='difference'"
                    )
                factor[times < roll.timestamp] *= roll.ratio
            prices *= factor[:, None]
        series[list(_PRICES)] = prices
    result: pd.DataFrame = series
    return result


def synthetic_future_bars(
    symbol: str = "ES",
    expiries: tuple[str, ...] = ("20261218", "20270319", "20270618", "20270917"),
    *,
    start: str = "2026-09-01",
    price: float = 5000.0,
    carry: float = 15.0,
    volatility: float = 0.01,
    seed: int = 7,
    exchange: str = "CME",
    multiplier: int = 50,
    tick_size: str = "0.25",
) -> dict[Future, pd.DataFrame]:
    """Return deterministic daily bars of a chain of futures months, for tests and examples.

    One market moves as a random walk (``volatility`` per day, from ``seed``); each month's
    close is the market plus ``carry`` points per month further out, on the tick grid. Every
    month has a bar at 21:00 UTC on each weekday from ``start`` to its last trading day (its
    ``expiry``), and none after: an expired month stops trading. Volume is 100,000 on the
    month nearest to expiry that is more than 7 days from it, 5,000 on the others.

    Args:
        symbol: The future's symbol.
        expiries: Each month's last trading day, ``YYYYMMDD``.
        start: The first day, ``YYYY-MM-DD``.
        price: The market's first price.
        carry: Points between one month and the next.
        volatility: The daily standard deviation of the market's log returns.
        seed: The random generator's seed.
        exchange: The months' exchange.
        multiplier: Their multiplier.
        tick_size: Their tick size.

    Returns:
        Each month (a :class:`~ibkrfw.Future` with its expiry) and its bars, nearest first,
        as :func:`roll_schedule` and :class:`~ibkrfw.sim.DataFrameFeed` take them.

    Raises:
        ConfigError: for no expiries, an expiry that is not a date after ``start``, or a
            price or volatility that is not a positive number.

    Example:
        >>> chain = synthetic_future_bars(expiries=("20261218", "20270319"))
        >>> [(f.local_symbol, len(b)) for f, b in chain.items()]
        [('ESZ6', 79), ('ESH7', 144)]
    """
    if not expiries:
        raise ConfigError("synthetic_future_bars: give one expiry at least, e.g. ('20261218',)")
    if not (isinstance(price, int | float) and math.isfinite(price) and price > 0):
        raise ConfigError(f"synthetic_future_bars(price={price!r}): give a positive number")
    if not (isinstance(volatility, int | float) and math.isfinite(volatility) and volatility > 0):
        raise ConfigError(
            f"synthetic_future_bars(volatility={volatility!r}): give a positive number (0.01)"
        )
    try:
        first = pd.Timestamp(start, tz="UTC") + pd.Timedelta(hours=21)
    except ValueError as exc:
        raise ConfigError(f"synthetic_future_bars(start={start!r}): give YYYY-MM-DD") from exc
    months = [
        Future(symbol, expiry=e, exchange=exchange, multiplier=multiplier, tick_size=tick_size)
        for e in expiries
    ]
    lasts = [pd.Timestamp(m.last_trade_day(), tz="UTC") + pd.Timedelta(hours=21) for m in months]
    for month, last in zip(months, lasts, strict=True):
        if last <= first:
            raise ConfigError(
                f"synthetic_future_bars: {month.id} expires on or before start={start!r}; "
                "give expiries after the start"
            )
    days = pd.bdate_range(first, max(lasts), tz="UTC", normalize=False)
    rng = np.random.default_rng(seed)
    market = price * np.exp(np.cumsum(rng.normal(0.0, volatility, len(days))))
    swing = np.abs(rng.normal(0.0, volatility / 2, len(days)))
    opens_at = np.concatenate([[market[0]], market[:-1]])
    tick = float(months[0].tick_size)

    def on_grid(values: np.ndarray) -> np.ndarray:
        return np.round(values / tick) * tick

    busy = np.empty(len(days), dtype=int)
    for i, day in enumerate(days):
        busy[i] = next(
            (k for k, last in enumerate(lasts) if (last - day).days > 7), len(months) - 1
        )
    chain: dict[Future, pd.DataFrame] = {}
    for k, (month, last) in enumerate(zip(months, lasts, strict=True)):
        live = days <= last
        close = market[live] + carry * k
        open_ = opens_at[live] + carry * k
        chain[month] = pd.DataFrame(
            {
                "open": on_grid(open_),
                "high": on_grid(np.maximum(open_, close) * (1 + swing[live])),
                "low": on_grid(np.minimum(open_, close) * (1 - swing[live])),
                "close": on_grid(close),
                "volume": np.where(busy[live] == k, 100_000.0, 5_000.0),
            },
            index=pd.DatetimeIndex(days[live], name="timestamp"),
        )
    return chain
