"""Compact, append-only logs of a ledger's fills and of a Decimal per fill (issue 25).

A run of a million orders keeps a million fills: as objects (a :class:`~ibkrfw.Fill`, a
Decimal price, a fill id, each a small long-lived object among the per-bar garbage) they
cost about a kilobyte each once the allocator's fragmentation is counted. Here they are
columns: integers in :mod:`array` arrays, the fill ids in one byte buffer, and each Decimal
an index into a table of the distinct values (prices, quantities and commissions repeat).

What comes back is exactly what went in: equal fills of the same types, each Decimal the
first one seen with the same string form (so the same sign, digits and exponent), each
instrument and side the very object appended. A fill the columns cannot hold exactly (an
id or a time beyond 64 bits, a Decimal subclass, a fill id that is not UTF-8) is kept whole.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import final, overload

from typing_extensions import override

from ibkrfw.model.fills import Fill
from ibkrfw.model.instruments import Instrument
from ibkrfw.model.orders import Side

__all__ = ["DecimalLog", "FillLog"]

_LOW, _HIGH = -(2**63), 2**63


class _NotColumnarError(Exception):
    """A value the columns cannot hold exactly."""


@final
class _Decimals:
    """The distinct Decimals of a log, each by its string form (exact: sign, digits, exponent)."""

    __slots__ = ("_by_id", "_by_text", "values")

    def __init__(self) -> None:
        self.values: list[Decimal] = []
        self._by_text: dict[str, int] = {}
        # The ids of the values held (alive as long as the table): a value seen again as the
        # same object, such as a shared zero, costs one dictionary look-up.
        self._by_id: dict[int, int] = {}

    def index(self, value: Decimal) -> int:
        at = self._by_id.get(id(value))
        if at is not None:
            return at
        if type(value) is not Decimal:
            raise _NotColumnarError
        text = str(value)
        at = self._by_text.get(text)
        if at is None:
            at = self._by_text[text] = self._by_id[id(value)] = len(self.values)
            self.values.append(value)
        return at

    def __getstate__(self) -> tuple[list[Decimal]]:
        return (self.values,)  # never empty: an empty state would not be set

    def __setstate__(self, state: tuple[list[Decimal]]) -> None:  # a copy's values: other ids
        self.values = values = state[0]
        self._by_text = {str(v): i for i, v in enumerate(values)}
        self._by_id = {id(v): i for i, v in enumerate(values)}


def _at(i: int, n: int) -> int:
    if i < 0:
        i += n
    if not 0 <= i < n:
        raise IndexError("log index out of range")
    return i


@final
class DecimalLog(Sequence[Decimal]):
    """An append-only sequence of Decimals, each stored as an index into the distinct values."""

    __slots__ = ("_index", "_odd", "_table")

    def __init__(self) -> None:
        self._table = _Decimals()
        self._index = array("i")
        self._odd: dict[int, Decimal] = {}

    def append(self, value: Decimal) -> None:
        try:
            self._index.append(self._table.index(value))
        except _NotColumnarError:
            self._odd[len(self._index)] = value
            self._index.append(0)

    def __len__(self) -> int:
        return len(self._index)

    @overload
    def __getitem__(self, i: int) -> Decimal: ...
    @overload
    def __getitem__(self, i: slice) -> list[Decimal]: ...
    @override
    def __getitem__(self, i: int | slice) -> Decimal | list[Decimal]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = _at(i, len(self._index))
        odd = self._odd.get(i) if self._odd else None
        return self._table.values[self._index[i]] if odd is None else odd

    @override
    def __iter__(self) -> Iterator[Decimal]:
        if self._odd:
            return (self[i] for i in range(len(self)))
        return map(self._table.values.__getitem__, self._index)


@final
class FillLog(Sequence[Fill]):
    """An append-only sequence of fills held as columns (see the module's docstring)."""

    __slots__ = (
        "_commission",
        "_decimals",
        "_id_ends",
        "_ids",
        "_instrument",
        "_object_at",
        "_objects",
        "_odd",
        "_order_id",
        "_price",
        "_quantity",
        "_side",
        "_slippage",
        "_ts",
    )

    def __init__(self) -> None:
        self._order_id = array("q")
        self._ts = array("q")
        self._instrument = array("i")  # into _objects
        self._side = array("i")  # into _objects
        self._quantity = array("i")  # into _decimals
        self._price = array("i")
        self._commission = array("i")
        self._slippage = array("i")
        self._ids = bytearray()  # the fill ids, UTF-8, one after the other
        self._id_ends = array("q")
        self._decimals = _Decimals()
        self._objects: list[Instrument | Side] = []  # by identity: the very objects come back
        self._object_at: dict[int, int] = {}
        self._odd: dict[int, Fill] = {}  # rows kept whole

    def __getstate__(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__ if name != "_object_at"}

    def __setstate__(self, state: dict[str, object]) -> None:  # a copy's objects have other ids
        for name, value in state.items():
            setattr(self, name, value)
        self._object_at = {id(o): i for i, o in enumerate(self._objects)}

    def _object(self, value: Instrument | Side) -> int:
        at = self._object_at.get(id(value))
        if at is None:
            at = self._object_at[id(value)] = len(self._objects)
            self._objects.append(value)
        return at

    def append(self, fill: Fill) -> None:
        """Add ``fill`` at the end."""
        order_id, ts = fill.order_id, fill.ts_ns
        try:
            if (
                type(fill) is not Fill
                or type(order_id) is not int
                or type(ts) is not int
                or not (_LOW <= order_id < _HIGH and _LOW <= ts < _HIGH)
                or type(fill.fill_id) is not str
            ):
                raise _NotColumnarError
            fill_id = fill.fill_id.encode()
            decimal = self._decimals.index
            quantity, price = decimal(fill.quantity), decimal(fill.price)
            commission, slippage = decimal(fill.commission), decimal(fill.slippage)
        except (_NotColumnarError, UnicodeEncodeError):
            self._odd[len(self._ts)] = fill
            order_id = ts = quantity = price = commission = slippage = 0
            fill_id = b""
            instrument = side = 0
        else:
            instrument, side = self._object(fill.instrument), self._object(fill.side)
        self._order_id.append(order_id)
        self._ts.append(ts)
        self._instrument.append(instrument)
        self._side.append(side)
        self._quantity.append(quantity)
        self._price.append(price)
        self._commission.append(commission)
        self._slippage.append(slippage)
        self._ids += fill_id
        self._id_ends.append(len(self._ids))

    def __len__(self) -> int:
        return len(self._ts)

    def _row(self, i: int) -> Fill:
        odd = self._odd.get(i) if self._odd else None
        if odd is not None:
            return odd
        objects, decimals = self._objects, self._decimals.values
        return Fill(
            self._order_id[i],
            objects[self._instrument[i]],  # type: ignore[arg-type]
            objects[self._side[i]],  # type: ignore[arg-type]
            decimals[self._quantity[i]],
            decimals[self._price[i]],
            decimals[self._commission[i]],
            self._ts[i],
            self._ids[self._id_ends[i - 1] if i else 0 : self._id_ends[i]].decode(),
            decimals[self._slippage[i]],
        )

    @overload
    def __getitem__(self, i: int) -> Fill: ...
    @overload
    def __getitem__(self, i: slice) -> list[Fill]: ...
    @override
    def __getitem__(self, i: int | slice) -> Fill | list[Fill]:
        if isinstance(i, slice):
            return [self._row(j) for j in range(*i.indices(len(self)))]
        return self._row(_at(i, len(self._ts)))

    @override
    def __iter__(self) -> Iterator[Fill]:
        if self._odd:
            yield from (self._row(i) for i in range(len(self)))
            return
        objects, decimals = self._objects, self._decimals.values
        ids, start = self._ids, 0
        for order_id, inst, side, qty, price, fee, ts, end, slip in zip(
            self._order_id,
            self._instrument,
            self._side,
            self._quantity,
            self._price,
            self._commission,
            self._ts,
            self._id_ends,
            self._slippage,
            strict=True,
        ):
            yield Fill(
                order_id,
                objects[inst],
                objects[side],
                decimals[qty],
                decimals[price],
                decimals[fee],
                ts,
                ids[start:end].decode(),
                decimals[slip],
            )
            start = end
