"""Saving and loading a RunResult: one zip file of JSON and numpy arrays, no pickle.

The file holds ``result.json`` (the run's description, orders, fills, cash adjustments, each
strategy's own part when one engine ran several, with every decimal as text) and
``arrays.npz`` (the equity curves, the bars, the exchange rates), read back with
``allow_pickle=False``: loading a result file runs no code from it.
"""

from __future__ import annotations

import enum
import io
import json
import math
import os
import zipfile
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from ibkrfw._version import __version__
from ibkrfw.core.history import BarArrays, History
from ibkrfw.errors import ConfigError
from ibkrfw.model.events import CashAdjusted, RiskWarning, TradingHalted
from ibkrfw.model.fills import Fill
from ibkrfw.model.instruments import Instrument
from ibkrfw.model.orders import Order, OrderRequest, OrderStatus, Side
from ibkrfw.portfolio.fx import FxRates

if TYPE_CHECKING:
    from ibkrfw.engine.result import RunResult

__all__ = ["FORMAT", "load_result", "save_result"]

FORMAT = "ibkrfw-run/1"
"""The format written, in ``result.json``'s ``format``; files of another format are refused."""

_BAR_COLUMNS = ("ts_ns", "open", "high", "low", "close", "volume")


def _plain(value: object) -> object:
    """A JSON value for a run parameter; anything else is kept as its ``repr``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Decimal | enum.Enum):
        return str(value.value if isinstance(value, enum.Enum) else value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return repr(value)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def save_result(result: RunResult, path: str | os.PathLike[str]) -> None:
    """Write ``result`` to ``path`` (see the module's description); replaces the file."""
    instruments: list[Instrument] = []
    index: dict[Instrument, int] = {}

    def ref(inst: Instrument) -> int:
        if inst not in index:
            index[inst] = len(instruments)
            instruments.append(inst)
        return index[inst]

    def request(req: OrderRequest) -> dict[str, object]:
        out: dict[str, object] = {}
        for field in attrs.fields(OrderRequest):
            value = getattr(req, field.name)
            if isinstance(value, Instrument):
                out[field.name] = ref(value)
            elif isinstance(value, enum.Enum):
                out[field.name] = value.value
            elif isinstance(value, Decimal):
                out[field.name] = str(value)
            else:
                out[field.name] = value
        return out

    orders = [
        {
            "order_id": o.order_id,
            "request": request(o.request),
            "status": o.status.value,
            "created_ns": o.created_ns,
            "updated_ns": o.updated_ns,
            "filled_quantity": str(o.filled_quantity),
            "avg_fill_price": _text(o.avg_fill_price),
            "reason": o.reason,
        }
        for o in result.order_list
    ]

    def fills(chosen: list[Fill]) -> list[list[object]]:
        return [
            [f.order_id, ref(f.instrument), f.side.value, str(f.quantity), str(f.price),
             str(f.commission), f.ts_ns, f.fill_id, str(f.slippage)]
            for f in chosen
        ]  # fmt: skip

    adjustments = [[a.ts_ns, str(a.amount), a.reason, a.currency] for a in result.cash_adjustments]
    arrays: dict[str, np.ndarray[Any, Any]] = {
        "ts_ns": result._ts,
        "equity": result._equity,
        "cash": result._cash,
    }
    bars = []
    for inst, history in result._bars.items():
        i = ref(inst)
        bars.append(i)
        for column in _BAR_COLUMNS:
            arrays[f"bars_{i}_{column}"] = np.asarray(getattr(history, column))
    fx: dict[str, object] | None = None
    if result.fx is not None:
        currencies = sorted(result.fx.currencies - {result.fx.base_currency})
        fx = {"base": result.fx.base_currency, "currencies": currencies}
        for currency in currencies:
            ts, rates = result.fx._series(currency)
            arrays[f"fx_{currency}_ts"], arrays[f"fx_{currency}_rate"] = ts, rates
    parts: dict[str, object] = {}  # each strategy's own, when the run had several
    description = {
        "format": FORMAT,
        "library": __version__,
        "strategy_name": result.strategy_name,
        "parameters": _plain(result.parameters),
        "starting_cash": result.starting_cash,
        "base_currency": result.base_currency,
        "instruments": [inst.to_dict() for inst in instruments],
        "bars": bars,
        "orders": orders,
        "fills": fills(result.fill_list),
        "earlier_fills": fills(result.earlier_fills),
        "realized": None if result._realized is None else [str(r) for r in result._realized],
        "cash_adjustments": adjustments,
        "fx": fx,
        "halts": [[h.ts_ns, h.rule, h.reason, h.until_ns, h.flatten] for h in result.halts],
        "risk_warnings": [[w.ts_ns, w.rule, w.reason] for w in result.risk_warnings],
        "strategies": parts,
    }
    for number, (name, part) in enumerate(result.strategies.items()):
        # its orders are the combined result's of its name; its own curve, fills and books
        for key, values in (("ts_ns", part._ts), ("equity", part._equity), ("cash", part._cash)):
            arrays[f"strategy_{number}_{key}"] = values
        parts[name] = {
            "number": number,
            "strategy_name": part.strategy_name,
            "parameters": _plain(part.parameters),
            "starting_cash": part.starting_cash,
            "fills": fills(part.fill_list),
            "realized": None if part._realized is None else [str(r) for r in part._realized],
            "risk_warnings": [[w.ts_ns, w.rule, w.reason] for w in part.risk_warnings],
        }
    buffer = io.BytesIO()
    savez: Any = np.savez_compressed  # its stubs cannot type names given as keywords
    savez(buffer, **arrays)
    temp = f"{os.fspath(path)}.tmp"
    with zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("result.json", json.dumps(description, indent=1))
        archive.writestr("arrays.npz", buffer.getvalue())
    os.replace(temp, path)


def load_result(path: str | os.PathLike[str]) -> RunResult:
    """Read a result written by :func:`save_result`.

    Raises:
        ConfigError: if the file is not a result file of this format.
    """
    from ibkrfw.engine.result import RunResult

    try:
        with zipfile.ZipFile(path) as archive:
            description = json.loads(archive.read("result.json"))
            if not isinstance(description, dict) or description.get("format") != FORMAT:
                found = description.get("format") if isinstance(description, dict) else None
                raise ConfigError(
                    f"{os.fspath(path)!r} has format {found!r}; this version reads {FORMAT!r}"
                )
            npz = np.load(io.BytesIO(archive.read("arrays.npz")), allow_pickle=False)
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{os.fspath(path)!r} is not a saved run: {exc}") from None
    instruments = [Instrument.from_dict(spec) for spec in description["instruments"]]

    def request(spec: dict[str, Any]) -> OrderRequest:
        values = dict(spec)
        values["instrument"] = instruments[values["instrument"]]
        return OrderRequest(**values)

    orders = [
        Order(
            o["order_id"],
            request(o["request"]),
            OrderStatus(o["status"]),
            o["created_ns"],
            o["updated_ns"],
            Decimal(o["filled_quantity"]),
            None if o["avg_fill_price"] is None else Decimal(o["avg_fill_price"]),
            o["reason"],
        )
        for o in description["orders"]
    ]

    def fills(rows: list[list[Any]]) -> list[Fill]:
        return [
            Fill(
                order_id,
                instruments[i],
                Side(side),
                Decimal(q),
                Decimal(p),
                Decimal(c),
                ts,
                fid,
                Decimal(slip),
            )
            for order_id, i, side, q, p, c, ts, fid, slip in rows
        ]

    bars = {
        instruments[i]: _history(BarArrays(*(arrays[f"bars_{i}_{c}"] for c in _BAR_COLUMNS)))
        for i in description["bars"]
    }
    fx_spec = description["fx"]
    fx = None
    if fx_spec is not None:
        fx = FxRates(
            {
                currency: (arrays[f"fx_{currency}_ts"], arrays[f"fx_{currency}_rate"])
                for currency in fx_spec["currencies"]
            },
            fx_spec["base"],
        )
    realized = description["realized"]
    base = description["base_currency"]
    halts = [
        TradingHalted(ts_ns=ts, rule=rule, reason=reason, until_ns=until, flatten=flatten)
        for ts, rule, reason, until, flatten in description.get("halts", [])
    ]
    strategies = {}
    for name, spec in description.get("strategies", {}).items():
        number, own = spec["number"], spec["realized"]
        strategies[name] = RunResult(
            strategy_name=spec["strategy_name"],
            parameters=spec["parameters"],
            starting_cash=spec["starting_cash"],
            timestamps_ns=arrays[f"strategy_{number}_ts_ns"],
            equity=arrays[f"strategy_{number}_equity"],
            cash=arrays[f"strategy_{number}_cash"],
            orders=[o for o in orders if o.request.strategy == name],
            fills=fills(spec["fills"]),
            realized=None if own is None else [Decimal(r) for r in own],
            bars=bars,
            base_currency=base,
            fx=fx,
            halts=halts,
            risk_warnings=[
                RiskWarning(ts_ns=ts, rule=rule, reason=reason)
                for ts, rule, reason in spec["risk_warnings"]
            ],
        )
    return RunResult(
        strategy_name=description["strategy_name"],
        parameters=description["parameters"],
        starting_cash=description["starting_cash"],
        timestamps_ns=arrays["ts_ns"],
        equity=arrays["equity"],
        cash=arrays["cash"],
        orders=orders,
        fills=fills(description["fills"]),
        earlier_fills=fills(description.get("earlier_fills", [])),
        realized=None if realized is None else [Decimal(r) for r in realized],
        bars=bars,
        cash_adjustments=[
            CashAdjusted(ts_ns=ts, amount=Decimal(amount), reason=reason, currency=currency)
            for ts, amount, reason, currency in description["cash_adjustments"]
        ],
        base_currency=base,
        fx=fx,
        halts=halts,
        risk_warnings=[
            RiskWarning(ts_ns=ts, rule=rule, reason=reason)
            for ts, rule, reason in description.get("risk_warnings", [])
        ],
        strategies=strategies,
    )


def _history(arrays: BarArrays) -> History:
    return History(arrays, 0, len(arrays.ts_ns))
