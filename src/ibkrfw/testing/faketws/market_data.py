"""The fake's answers to the market-data and reference requests beyond bars and quotes.

Head time stamps, historical ticks, matching symbols, tick-by-tick data, market depth and
option-chain parameters, all derived from the fake's replayed bars and quotes, in the wire
layouts ibapi's decoder reads at server version 157 (the same in 9.81 and 10.x); and the
error TWS sends for a request the fake does not serve.

The fake has no tick history, so historical ticks are synthesised: four trades a bar (open,
then the high and low in the order the bar most likely took them, then the close) spread
evenly over the bar, with the bar's volume shared between them; bid/ask ticks are the
replayed quotes, or one tick either side of those trades when only bars are replayed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ibkrfw.errors import ConfigError
from ibkrfw.model._time import parse_ib_time
from ibkrfw.model.data import Bar, Quote
from ibkrfw.model.instruments import AssetClass, Instrument, Option

if TYPE_CHECKING:
    from ibkrfw.testing.faketws.market import Market
    from ibkrfw.testing.faketws.server import _Session

__all__ = ["MarketDataRequests"]

# Incoming (client -> server) message ids
REQ_MKT_DEPTH, CANCEL_MKT_DEPTH = 10, 11
REQ_SEC_DEF_OPT_PARAMS, REQ_MATCHING_SYMBOLS = 78, 81
REQ_HEAD_TIMESTAMP, CANCEL_HEAD_TIMESTAMP = 87, 90
REQ_HISTORICAL_TICKS, REQ_TICK_BY_TICK_DATA, CANCEL_TICK_BY_TICK_DATA = 96, 97, 98
# Outgoing (server -> client) message ids
MARKET_DEPTH, MARKET_DEPTH_L2 = 12, 13
SEC_DEF_OPT_PARAM, SEC_DEF_OPT_PARAM_END, SYMBOL_SAMPLES, HEAD_TIMESTAMP = 75, 76, 79, 88
HISTORICAL_TICKS, HISTORICAL_TICKS_BID_ASK, HISTORICAL_TICKS_LAST, TICK_BY_TICK = 96, 97, 98, 99

#: IB's market-depth operations and sides.
INSERT, UPDATE, DELETE = 0, 1, 2
ASK_SIDE, BID_SIDE = 0, 1
#: The deepest book the fake keeps (TWS sends fewer rows than asked when the book is thinner).
MAX_DEPTH_ROWS = 10
#: The most ticks one reqHistoricalTicks returns (IB's limit).
MAX_HISTORICAL_TICKS = 1000
#: tick-by-tick types, by the name reqTickByTickData takes.
TICK_BY_TICK_TYPES = {"Last": 1, "AllLast": 2, "BidAsk": 3, "MidPoint": 4}
HEAD_TIMESTAMP_SHOWS = {"TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK", "ADJUSTED_LAST"}
MATCHING_SYMBOLS_MAX = 16  # TWS returns at most 16 descriptions

# Requests the fake does not serve that carry a request id, and where (field index): the
# error goes to that id so the client's waiter for it ends. The others get id -1.
_REQ_ID_FIELD = {
    21: 2, 22: 1, 52: 2, 54: 2, 55: 2, 67: 2, 68: 2, 69: 2, 74: 2,
    79: 1, 83: 1, 84: 1, 86: 1, 88: 1, 92: 1, 94: 1,
}  # fmt: skip
#: Messages TWS itself never answers (cancellations, log level, auto-open binding):
#: the fake records them and answers nothing either.
NO_REPLY = frozenset({13, 14, 15, 23, 53, 56, 57, 64, 70, 75, 89, 93, 95})

Fields = list[object]
# (time s, trade price, trade size, bid, ask, bid size, ask size)
_Tick = tuple[int, float, int, float, float, int, int]


class MarketDataRequests:
    """The handlers of these requests and the streams they start, for one :class:`FakeTWS`.

    Args:
        market: The fake's market (bars, quotes, the clock).
        contract_of: The server's lookup of a request's contract block: the instrument, or
            None once it has sent error 200.
    """

    def __init__(
        self,
        market: Market,
        contract_of: Callable[[_Session, int, list[str], int], Instrument | None],
    ) -> None:
        self.market = market
        self._contract_of = contract_of
        # (client id, req id) -> (session, instrument, tick type)
        self._tick_by_tick: dict[tuple[int, int], tuple[_Session, Instrument, int]] = {}
        # (client id, req id) -> (session, instrument, rows, smart, the book as sent)
        self._depth: dict[
            tuple[int, int],
            tuple[_Session, Instrument, int, bool, dict[int, list[tuple[float, int]]]],
        ] = {}
        self._corrupt_depth: dict[str, float] = {}  # fields of the next depth row to spoil

    def handlers(self) -> dict[int, Callable[[_Session, list[str]], None]]:
        """The message ids these handle, for the server's dispatch table."""
        return {
            REQ_MKT_DEPTH: self._req_mkt_depth,
            CANCEL_MKT_DEPTH: self._cancel_mkt_depth,
            REQ_SEC_DEF_OPT_PARAMS: self._sec_def_opt_params,
            REQ_MATCHING_SYMBOLS: self._matching_symbols,
            REQ_HEAD_TIMESTAMP: self._head_timestamp,
            CANCEL_HEAD_TIMESTAMP: lambda session, fields: None,  # answered at once anyway
            REQ_HISTORICAL_TICKS: self._historical_ticks,
            REQ_TICK_BY_TICK_DATA: self._req_tick_by_tick,
            CANCEL_TICK_BY_TICK_DATA: self._cancel_tick_by_tick,
        }

    # --- not served ---------------------------------------------------------------------------
    @staticmethod
    def unsupported(session: _Session, msg_id: int, fields: list[str]) -> None:
        """Answer a request the fake does not serve as TWS answers an invalid one: error 321.

        TWS's code 321 is "Error validating request" (IB's message codes page); it goes to
        the request's id where it has one, so a client waiting on that id stops waiting.
        """
        if msg_id in NO_REPLY:
            return
        at = _REQ_ID_FIELD.get(msg_id)
        try:
            req_id = int(fields[at]) if at is not None else -1
        except (IndexError, ValueError):
            req_id = -1
        session.error(
            req_id,
            321,
            f"Error validating request:-'{msg_id}' : cause - the fake TWS does not serve "
            f"message {msg_id}; see the fake TWS page for the requests it serves",
        )

    def _head_timestamp(self, session: _Session, fields: list[str]) -> None:
        # [87, reqId, conId, symbol, secType, ..., currency(11), ..., useRTH, whatToShow, fmt]
        req_id = int(fields[1])
        inst = self._contract_of(session, req_id, fields, 2)
        if inst is None:
            return
        what, format_date = fields[16], fields[17]
        if what not in HEAD_TIMESTAMP_SHOWS:
            cause = f"whatToShow must be one of {sorted(HEAD_TIMESTAMP_SHOWS)}"
            session.error(req_id, 321, _invalid(what, cause))
            return
        first = self._first_ns(inst)
        if first is None:
            session.error(req_id, 162, "Historical Market Data Service error message:"
                                       "HMDS query returned no data")  # fmt: skip
            return
        stamp = dt.datetime.fromtimestamp(first / 1e9, tz=dt.UTC)
        text = str(first // 1_000_000_000) if format_date == "2" else f"{stamp:%Y%m%d-%H:%M:%S}"
        session.send(HEAD_TIMESTAMP, req_id, text)

    def _first_ns(self, inst: Instrument) -> int | None:
        stamps = []
        if inst in self.market.arrays and len(self.market.arrays[inst].ts_ns):
            stamps.append(int(self.market.arrays[inst].ts_ns[0]))
        if inst in self.market.quotes and len(self.market.quotes[inst][0]):
            stamps.append(int(self.market.quotes[inst][0][0]))
        return min(stamps) if stamps else None

    def _matching_symbols(self, session: _Session, fields: list[str]) -> None:
        req_id, pattern = int(fields[1]), fields[2].strip().upper()
        found: Fields = []
        count = 0
        for inst, con_id in self.market.con_ids.items():
            if pattern and inst.symbol.upper().startswith(pattern) and count < MATCHING_SYMBOLS_MAX:
                derivatives = ["OPT"] if inst.asset_class is AssetClass.STOCK else []
                found += [con_id, inst.symbol, inst.asset_class.value, _primary(inst),
                          inst.currency, len(derivatives), *derivatives]  # fmt: skip
                count += 1
        session.send(SYMBOL_SAMPLES, req_id, count, *found)

    def _sec_def_opt_params(self, session: _Session, fields: list[str]) -> None:
        # [78, reqId, underlyingSymbol, futFopExchange, underlyingSecType, underlyingConId]
        req_id = int(fields[1])
        try:
            con_id = int(fields[5] or 0)
        except ValueError:
            con_id = 0
        inst = self.market.find(con_id, fields[2], fields[4], "")
        if inst is None:
            session.error(req_id, 200, "No security definition has been found for the request")
            return
        last = self._last_price(inst)
        expiries = third_fridays(self._today(), 4)
        strikes = strike_ladder(last) if last is not None else []
        listed = [
            o for o in self.market.con_ids if isinstance(o, Option) and o.symbol == inst.symbol
        ]
        if listed:  # the options it replays are in the chain too
            expiries = sorted({*expiries, *(o.expiry for o in listed)})
            strikes = sorted({*strikes, *(float(o.strike) for o in listed)})
        session.send(
            SEC_DEF_OPT_PARAM, req_id, "SMART", self.market.con_ids[inst], inst.symbol, "100",
            len(expiries), *expiries, len(strikes), *strikes,
        )  # fmt: skip
        session.send(SEC_DEF_OPT_PARAM_END, req_id)

    def _today(self) -> dt.date:
        now = self.market.clock.now_ns()
        return dt.datetime.fromtimestamp(now / 1e9, tz=dt.UTC).date()

    def _last_price(self, inst: Instrument) -> float | None:
        bar = self.market.last.get(inst)
        if bar is not None:
            return float(bar.close)
        quote = self.market.last_quote.get(inst)
        if quote is not None:
            return (float(quote.bid) + float(quote.ask)) / 2
        arrays = self.market.arrays.get(inst)
        if arrays is not None and len(arrays.open):
            return float(arrays.open[0])  # nothing replayed yet: the first bar's open
        quotes = self.market.quotes.get(inst)
        if quotes is not None and len(quotes[0]):
            return (float(quotes[1][0]) + float(quotes[2][0])) / 2
        return None

    # --- option computations ------------------------------------------------------------------
    def option_computations(
        self, req_id: int, option: Option, bid: float, ask: float, last: float
    ) -> list[Fields]:
        """``tickOptionComputation`` (21) for the bid, ask, last and model of ``option``.

        As TWS computes them: the implied volatility of each price (Black-Scholes, the
        underlying's last price, no rate or dividend), the model's greeks at the mid's
        volatility, vega per volatility point and theta per day (IB's units). A value that
        cannot be computed (no price of the underlying, a price no volatility gives) is sent
        as TWS's "not computed" mark: -1 (volatility, prices), -2 (greeks).
        """
        from ibkrfw.options import black_scholes, implied_vol_black_scholes, years_to_expiry

        underlying = next(
            (
                i
                for i in self.market.con_ids
                if i.symbol == option.symbol and i.asset_class is AssetClass.STOCK
            ),
            None,
        )
        spot = self._last_price(underlying) if underlying is not None else None
        years = years_to_expiry(option, self.market.clock.now_ns())
        strike = float(option.strike)
        out: list[Fields] = []

        def vol_of(price: float) -> float:
            if spot is None or not price > 0 or years <= 0:
                return -1.0
            vol = float(
                implied_vol_black_scholes(
                    option.right, price=price, spot=spot, strike=strike, time_years=years,
                    rate=0.0,
                )
            )  # fmt: skip
            return vol if vol > 0 else -1.0

        for tick_type, price in ((10, bid), (11, ask), (12, last)):
            vol = vol_of(price)
            out.append(
                self._computation(req_id, tick_type, vol, spot, price, years, strike, option)
            )
        mid = (bid + ask) / 2 if bid > 0 and ask > 0 else last
        vol = vol_of(mid)
        model = -1.0
        if vol > 0 and spot is not None:
            model = float(
                black_scholes(
                    option.right, spot=spot, strike=strike, time_years=years, rate=0.0, vol=vol
                )
            )
        out.append(self._computation(req_id, 13, vol, spot, model, years, strike, option))
        return out

    @staticmethod
    def _computation(
        req_id: int,
        tick_type: int,
        vol: float,
        spot: float | None,
        price: float,
        years: float,
        strike: float,
        option: Option,
    ) -> Fields:
        from ibkrfw.options import black_scholes_greeks

        if vol <= 0 or spot is None:
            return [21, req_id, tick_type, 1, -1.0, -2.0, price if price > 0 else -1.0, 0.0,
                    -2.0, -2.0, -2.0, spot if spot is not None else -1.0]  # fmt: skip
        greeks = black_scholes_greeks(
            option.right, spot=spot, strike=strike, time_years=years, rate=0.0, vol=vol
        )
        return [
            21, req_id, tick_type, 1, round(vol, 10), round(float(greeks.delta), 10),
            round(price, 10), 0.0, round(float(greeks.gamma), 10),
            round(float(greeks.vega_pct), 10), round(float(greeks.theta_per_day), 10), spot,
        ]  # fmt: skip

    # --- historical ticks ---------------------------------------------------------------------
    def _historical_ticks(self, session: _Session, fields: list[str]) -> None:
        # [96, reqId, contract(2..13), includeExpired, start, end, count, whatToShow, useRth,
        #  ignoreSize, misc]
        req_id = int(fields[1])
        inst = self._contract_of(session, req_id, fields, 2)
        if inst is None:
            return
        start, end, what = fields[15].strip(), fields[16].strip(), fields[18]
        value = fields[17]  # the field named in the error
        try:
            count = int(value)
            if not 0 < count <= MAX_HISTORICAL_TICKS:
                raise ValueError(f"numberOfTicks must be 1 to {MAX_HISTORICAL_TICKS}, not {count}")
            value = start or end
            if bool(start) == bool(end):
                raise ValueError("give exactly one of startDateTime and endDateTime")
            at = parse_ib_time(start or end, inst.timezone)
            value = what
            if what not in ("TRADES", "BID_ASK", "MIDPOINT"):
                raise ValueError(f"whatToShow must be TRADES, BID_ASK or MIDPOINT, not {what!r}")
        except ValueError as exc:
            session.error(req_id, 321, _invalid(value, str(exc)))
            return
        ticks = self.synthetic_ticks(inst, trades=what == "TRADES")
        if start:
            chosen = [t for t in ticks if t[0] * 1_000_000_000 >= at][:count]
        else:
            chosen = [t for t in ticks if t[0] * 1_000_000_000 <= at][-count:]
        self._send_historical(session, req_id, what, chosen)

    @staticmethod
    def _send_historical(session: _Session, req_id: int, what: str, chosen: list[_Tick]) -> None:
        """Send ticks as historicalTicksLast (TRADES), ...BidAsk (BID_ASK) or historicalTicks."""
        items: Fields = []
        if what == "TRADES":
            for t, price, size, *_ in chosen:
                items += [t, 0, price, size, "", ""]  # mask, price, size, exchange, conditions
            session.send(HISTORICAL_TICKS_LAST, req_id, len(chosen), *items, 1)
        elif what == "BID_ASK":
            for t, _, _, bid, ask, bid_size, ask_size in chosen:
                items += [t, 0, bid, ask, bid_size, ask_size]
            session.send(HISTORICAL_TICKS_BID_ASK, req_id, len(chosen), *items, 1)
        else:
            for t, _, _, bid, ask, *_ in chosen:
                items += [t, "", _round((bid + ask) / 2), 0]
            session.send(HISTORICAL_TICKS, req_id, len(chosen), *items, 1)

    def synthetic_ticks(self, inst: Instrument, *, trades: bool) -> list[_Tick]:
        """The ticks the fake has for ``inst`` up to its clock, oldest first.

        Trades (``trades=True``): four a replayed bar, as the module docstring says, with
        the quote one tick either side. Otherwise the replayed quotes, or the same
        bar-derived ticks when ``inst`` has no quotes.
        """
        now = self.market.clock.now_ns()
        if self.market.position < 0:
            return []
        quotes = self.market.quotes.get(inst)
        if not trades and quotes is not None:
            ts, bid, ask, bid_size, ask_size = quotes
            upto = int(np.searchsorted(ts, now, side="right"))
            return [
                (int(ts[i] // 1_000_000_000), 0.0, 0, float(bid[i]), float(ask[i]),
                 _size(bid_size[i]), _size(ask_size[i]))
                for i in range(upto)
            ]  # fmt: skip
        arrays = self.market.arrays.get(inst)
        if arrays is None:
            return []
        ts = arrays.ts_ns
        upto = int(np.searchsorted(ts, now, side="right"))
        spacing = int(np.median(np.diff(ts))) if len(ts) > 1 else 60 * 1_000_000_000
        tick = float(inst.tick_size)
        out: list[_Tick] = []
        for i in range(upto):
            o, h, lo, c = (float(arrays.open[i]), float(arrays.high[i]),
                           float(arrays.low[i]), float(arrays.close[i]))  # fmt: skip
            volume = _size(arrays.volume[i])
            path = (o, lo, h, c) if c >= o else (o, h, lo, c)  # up bars dip first
            sizes = [volume // 4] * 3 + [volume - 3 * (volume // 4)]
            for k, (price, size) in enumerate(zip(path, sizes, strict=True)):
                t = int((ts[i] + k * spacing // 4) // 1_000_000_000)
                out.append((t, price, size, _round(price - tick), _round(price + tick), 100, 100))
        return out

    # --- tick by tick -------------------------------------------------------------------------
    def _req_tick_by_tick(self, session: _Session, fields: list[str]) -> None:
        # [97, reqId, contract(2..13), tickType, numberOfTicks, ignoreSize]
        req_id = int(fields[1])
        inst = self._contract_of(session, req_id, fields, 2)
        if inst is None or session.client_id is None:
            return
        kind = TICK_BY_TICK_TYPES.get(fields[14])
        if kind is None:
            cause = f"tickType must be one of {sorted(TICK_BY_TICK_TYPES)}"
            session.error(req_id, 321, _invalid(fields[14], cause))
            return
        try:
            count = int(fields[15] or 0)
            if not 0 <= count <= MAX_HISTORICAL_TICKS:
                raise ValueError
        except ValueError:
            cause = f"numberOfTicks must be 0 to {MAX_HISTORICAL_TICKS}"
            session.error(req_id, 321, _invalid(fields[15], cause))
            return
        with self.market.lock:  # see FakeTWS.step()
            if count:  # the last ticks first, through the historical-ticks messages, as TWS
                what = "TRADES" if kind <= 2 else "BID_ASK" if kind == 3 else "MIDPOINT"
                ticks = self.synthetic_ticks(inst, trades=kind <= 2)[-count:]
                self._send_historical(session, req_id, what, ticks)
            self._tick_by_tick[(session.client_id, req_id)] = (session, inst, kind)
            top = self._top(inst)
            if kind >= 3 and top is not None and not count:  # the current quote, as TWS does
                self._send_tick(session, req_id, kind, top, None)

    def _cancel_tick_by_tick(self, session: _Session, fields: list[str]) -> None:
        if session.client_id is not None:
            self._tick_by_tick.pop((session.client_id, int(fields[1])), None)

    def _top(self, inst: Instrument) -> tuple[int, float, float, int, int] | None:
        """The current top of book: (time s, bid, ask, bid size, ask size)."""
        quote = self.market.last_quote.get(inst)
        if quote is not None:
            return (quote.ts_ns // 1_000_000_000, float(quote.bid), float(quote.ask),
                    _size(quote.bid_size), _size(quote.ask_size))  # fmt: skip
        bar = self.market.last.get(inst)
        if bar is not None and inst not in self.market.quotes:
            tick = float(inst.tick_size)
            return (bar.ts_ns // 1_000_000_000, _round(bar.close - tick),
                    _round(bar.close + tick), 100, 100)  # fmt: skip
        return None

    @staticmethod
    def _send_tick(
        session: _Session,
        req_id: int,
        kind: int,
        top: tuple[int, float, float, int, int] | None,
        trade: Bar | None,
    ) -> None:
        if kind <= 2 and trade is not None:
            volume = _size(trade.volume)
            session.send(TICK_BY_TICK, req_id, kind, trade.ts_ns // 1_000_000_000,
                         float(trade.close), volume, 0, "", "")  # fmt: skip
        elif kind == 3 and top is not None:
            t, bid, ask, bid_size, ask_size = top
            session.send(TICK_BY_TICK, req_id, 3, t, bid, ask, bid_size, ask_size, 0)
        elif kind == 4 and top is not None:
            session.send(TICK_BY_TICK, req_id, 4, top[0], _round((top[1] + top[2]) / 2))

    # --- market depth -------------------------------------------------------------------------
    def corrupt_next_depth(self, **fields: float) -> None:
        """Spoil the next depth row sent (see :meth:`FakeTWS.corrupt_next_depth`)."""
        unknown = set(fields) - {"position", "operation", "side", "price", "size"}
        if unknown:
            raise ConfigError(f"a depth row has no field {sorted(unknown)[0]!r}")
        with self.market.lock:
            self._corrupt_depth = dict(fields)

    def _req_mkt_depth(self, session: _Session, fields: list[str]) -> None:
        # [10, 5, reqId, conId, symbol, ..., currency(12), local, class, numRows, smart, opts]
        req_id = int(fields[2])
        inst = self._contract_of(session, req_id, fields, 3)
        if inst is None or session.client_id is None:
            return
        try:
            rows = int(fields[15])
            if rows < 1:
                raise ValueError
        except ValueError:
            session.error(req_id, 321, _invalid(fields[15], "numRows must be a positive whole "
                                                            "number"))  # fmt: skip
            return
        smart = fields[16] == "1"
        with self.market.lock:  # see FakeTWS.step()
            book: dict[int, list[tuple[float, int]]] = {ASK_SIDE: [], BID_SIDE: []}
            self._depth[(session.client_id, req_id)] = (
                session,
                inst,
                min(rows, MAX_DEPTH_ROWS),
                smart,
                book,
            )
            self._send_depth(session.client_id, req_id)

    def _cancel_mkt_depth(self, session: _Session, fields: list[str]) -> None:
        if session.client_id is not None:
            self._depth.pop((session.client_id, int(fields[2])), None)

    def _send_depth(self, client_id: int, req_id: int) -> None:
        session, inst, rows, smart, book = self._depth[(client_id, req_id)]
        top = self._top(inst)
        if top is None:
            return
        _, bid, ask, bid_size, ask_size = top
        tick = float(inst.tick_size)
        wanted = {
            ASK_SIDE: [(_round(ask + k * tick), (ask_size or 100) * (k + 1)) for k in range(rows)],
            BID_SIDE: [
                (_round(bid - k * tick), (bid_size or 100) * (k + 1))
                for k in range(rows)
                if bid - k * tick > tick / 2  # no level at or below zero
            ],
        }
        maker = _primary(inst)
        messages: list[tuple[object, ...]] = []
        for side in (ASK_SIDE, BID_SIDE):
            sent, levels = book[side], wanted[side]
            changes: list[tuple[int, int, float, int]] = []
            for position, level in enumerate(levels):
                if position >= len(sent):
                    changes.append((position, INSERT, *level))
                elif sent[position] != level:
                    changes.append((position, UPDATE, *level))
            # deletes go from the deepest level up: each one moves the rows below it up
            for position in range(len(sent) - 1, len(levels) - 1, -1):
                changes.append((position, DELETE, *sent[position]))
            for position, operation, price, size in changes:
                row: dict[str, float] = {"position": position, "operation": operation,
                                         "side": side, "price": price, "size": size}  # fmt: skip
                if self._corrupt_depth:
                    row.update(self._corrupt_depth)
                    self._corrupt_depth = {}
                p, o, s, pr, sz = (row[k] for k in ("position", "operation", "side", "price",
                                                     "size"))  # fmt: skip
                if smart:
                    messages.append((MARKET_DEPTH_L2, 1, req_id, p, maker, o, s, pr, sz, 1))
                else:
                    messages.append((MARKET_DEPTH, 1, req_id, p, o, s, pr, sz))
            book[side] = list(levels)
        session.send_many(messages)  # one change, one write, as TWS sends it

    # --- streams, called by the server as the market moves -------------------------------------
    def on_quote(self, quote: Quote) -> None:
        """Send a replayed quote to the tick-by-tick bid/ask and depth subscribers."""
        top = self._top(quote.instrument)
        for (_, req_id), (session, inst, kind) in list(self._tick_by_tick.items()):
            if inst == quote.instrument and kind >= 3 and not session.closed.is_set():
                self._send_tick(session, req_id, kind, top, None)
        self._depth_changed(quote.instrument)

    def on_bar(self, bar: Bar) -> None:
        """Send a replayed bar's trade (and, with no quotes, its quote) to the subscribers."""
        inst = bar.instrument
        top = self._top(inst) if inst not in self.market.quotes else None
        for (_, req_id), (session, wanted, kind) in list(self._tick_by_tick.items()):
            if wanted == inst and not session.closed.is_set() and (kind <= 2 or top):
                self._send_tick(session, req_id, kind, top, bar)
        if top is not None:
            self._depth_changed(inst)

    def _depth_changed(self, inst: Instrument) -> None:
        for (client_id, req_id), (session, wanted, *_) in list(self._depth.items()):
            if wanted == inst and not session.closed.is_set():
                self._send_depth(client_id, req_id)


def third_fridays(after: dt.date, count: int) -> list[str]:
    """The next ``count`` monthly option expiries (third Fridays) after ``after``, yyyymmdd."""
    out: list[str] = []
    year, month = after.year, after.month
    while len(out) < count:
        first = dt.date(year, month, 1)
        friday = first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)
        if friday > after:
            out.append(f"{friday:%Y%m%d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def strike_ladder(price: float, each_side: int = 10) -> list[float]:
    """Strikes around ``price``: ``each_side`` either side of the nearest, at IB-like steps."""
    step = 1.0 if price < 50 else 2.5 if price < 200 else 5.0
    centre = round(price / step) * step
    return [
        _round(centre + k * step) for k in range(-each_side, each_side + 1) if centre + k * step > 0
    ]


def _primary(inst: Instrument) -> str:
    return getattr(inst, "primary_exchange", "") or inst.exchange


def _size(value: float) -> int:
    return int(value) if value == value else 0


def _round(value: float) -> float:
    return round(value, 10)


def _invalid(value: str, cause: str) -> str:
    return f"Error validating request:-'{value}' : cause - {cause}"
