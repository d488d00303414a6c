"""The fake's account streams, at TWS's cadence: account updates, account summary, P&L.

TWS does not push every change of an account the moment it happens, and code that reads the
account has to live with that. The fake keeps TWS's timing (IB's "Account Updates" and
"Profit And Loss" pages):

- ``reqAccountUpdates`` and ``reqAccountUpdatesMulti``: everything at once on subscribing
  (then ``accountDownloadEnd`` / ``accountUpdateMultiEnd``); afterwards a position change
  sends that position's ``updatePortfolio`` and the account values it changed at once, and
  every three minutes (``interval_s``) the values that changed, every position at its
  current price, and ``updateAccountTime``. A price move alone waits for the next interval.
- ``reqPositionsMulti``: the account's positions, ``positionMultiEnd``, then each position
  change at once, until ``cancelPositionsMulti``.
- ``reqAccountSummary``: the requested tags at once, then ``accountSummaryEnd``; the
  subscription stays until ``cancelAccountSummary`` and sends the tags whose value changed
  every three minutes. At most two are active per client (error 322 beyond).
- ``reqPnL`` and ``reqPnLSingle``: daily, unrealised and realised P&L at once, then again
  whenever a value changes, at most once a second (``pnl_interval_s``): at the end of a
  replayed step, or when the fake's timer (five times a second) finds a change.

Times are the fake's clock: the wall clock, a given :class:`~ibkrfw.core.clock.Clock`, or the
replayed bars' time. Daily P&L counts from the account's value when the previous day
(New York time, where IB resets it) last changed; realised P&L here is net of commissions,
so daily = realised today + the change of unrealised, to the cent.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import attrs

from ibkrfw.model.instruments import Instrument
from ibkrfw.testing.faketws import messages as m

if TYPE_CHECKING:
    from ibkrfw.testing.faketws.market import Market
    from ibkrfw.testing.faketws.server import _Session

__all__ = ["AccountStreams"]

# Incoming (client -> server) message ids
REQ_ACCOUNT_UPDATES, REQ_ACCOUNT_SUMMARY, CANCEL_ACCOUNT_SUMMARY = 6, 62, 63
REQ_ACCOUNT_UPDATES_MULTI, CANCEL_ACCOUNT_UPDATES_MULTI = 76, 77
REQ_PNL, CANCEL_PNL, REQ_PNL_SINGLE, CANCEL_PNL_SINGLE = 92, 93, 94, 95
REQ_POSITIONS_MULTI, CANCEL_POSITIONS_MULTI = 74, 75
# Outgoing (server -> client) message ids
ACCOUNT_TIME, ACCOUNT_SUMMARY_END, ACCOUNT_DOWNLOAD_END = 8, 64, 54
ACCOUNT_UPDATE_MULTI, ACCOUNT_UPDATE_MULTI_END, PNL, PNL_SINGLE = 73, 74, 94, 95
POSITION_MULTI, POSITION_MULTI_END = 71, 72

#: TWS's account update interval: three minutes (IB's "Account Updates" page).
ACCOUNT_INTERVAL_S = 180.0
#: How often a P&L subscription may get a new value at most.
PNL_INTERVAL_S = 1.0
#: The most account summary subscriptions a client may hold at once (IB: two).
MAX_ACCOUNT_SUMMARIES = 2
SUMMARY_LIMIT_TEXT = (
    "Error processing request:-'bd' : cause - Maximum number of account summary requests exceeded"
)
_PNL_ZONE = ZoneInfo("America/New_York")

Values = dict[str, tuple[str, str]]  # tag -> (value, currency)


@attrs.define
class _Summary:
    """One reqAccountSummary subscription: its tags and what it was last sent."""

    tags: frozenset[str]
    sent: dict[str, str]


@attrs.define
class _Pnl:
    """One reqPnL (con_id None) or reqPnLSingle subscription."""

    con_id: int | None
    sent: tuple[object, ...] | None = None
    sent_ns: int = 0


@attrs.frozen
class _Mark:
    """What the day's P&L counts from: the account and each instrument at an instant."""

    day: dt.date
    equity: float
    realized: float  # net of commissions
    pnl: dict[Instrument, float]  # realised (net) + unrealised, per instrument
    unrealized: dict[Instrument, float]


class AccountStreams:
    """The account subscriptions of the fake's clients, sent at TWS's cadence.

    Args:
        market: The fake's market (its portfolio and lock).
        account: The account id.
        values: The account values now, by tag (the fake's margin model).
        now_ns: The fake's clock.
        interval_s: The account update interval (TWS: three minutes).
        pnl_interval_s: The shortest time between two P&L messages of one subscription.
    """

    def __init__(
        self,
        market: Market,
        account: str,
        values: Callable[[], Values],
        now_ns: Callable[[], int],
        *,
        interval_s: float = ACCOUNT_INTERVAL_S,
        pnl_interval_s: float = PNL_INTERVAL_S,
    ) -> None:
        self.market = market
        self.account = account
        self._values = values
        self._now_ns = now_ns
        self.interval_ns = int(interval_s * 1e9)
        self.pnl_interval_ns = int(pnl_interval_s * 1e9)
        self._lock = threading.RLock()  # taken after the market's lock, never before
        self._updates: dict[_Session, dict[str, str]] = {}  # reqAccountUpdates: values sent
        self._multi: dict[tuple[_Session, int], dict[str, str]] = {}
        self._summaries: dict[tuple[_Session, int], _Summary] = {}
        self._pnl: dict[tuple[_Session, int], _Pnl] = {}
        self._positions_multi: set[tuple[_Session, int]] = set()
        self._last_tick_ns: int | None = None
        self._mark: _Mark | None = None  # where today's P&L counts from
        self._seen: _Mark | None = None  # the last look at the account

    def handlers(self) -> dict[int, Callable[[_Session, list[str]], None]]:
        """The incoming message ids served here, with their handlers."""
        return {
            REQ_ACCOUNT_UPDATES: self._req_account_updates,
            REQ_ACCOUNT_SUMMARY: self._req_account_summary,
            CANCEL_ACCOUNT_SUMMARY: self._cancel_account_summary,
            REQ_ACCOUNT_UPDATES_MULTI: self._req_account_updates_multi,
            CANCEL_ACCOUNT_UPDATES_MULTI: self._cancel_account_updates_multi,
            REQ_PNL: self._req_pnl,
            CANCEL_PNL: self._cancel_pnl,
            REQ_PNL_SINGLE: self._req_pnl_single,
            CANCEL_PNL_SINGLE: self._cancel_pnl,
            REQ_POSITIONS_MULTI: self._req_positions_multi,
            CANCEL_POSITIONS_MULTI: self._cancel_positions_multi,
        }

    # --- what happens ---------------------------------------------------------------------------
    def on_time(self) -> None:
        """Time passed (a replayed step, or the fake's ticker): send what is due."""
        now = self._now_ns()
        with self.market.lock, self._lock:
            self._forget_closed()
            self._look(now)
            if self._last_tick_ns is None or now < self._last_tick_ns:  # started, or replaying
                self._last_tick_ns = now
            elif now - self._last_tick_ns >= self.interval_ns:
                self._last_tick_ns = now
                self._tick(now)
            self._send_pnl(now, changed_only=True)

    def on_fill(self, inst: Instrument) -> None:
        """A position changed (runs under the market's lock): TWS tells at once."""
        now = self._now_ns()
        with self.market.lock, self._lock:
            self._forget_closed()
            self._look(now)
            values = self._values()
            row = self._portfolio_row(inst)
            for session, sent in self._updates.items():
                self._send_values(session, values, sent, changed_only=True)
                session.send(*row)
            for (session, req_id), sent in self._multi.items():
                self._send_multi(session, req_id, values, sent, changed_only=True)
            for session, req_id in self._positions_multi:
                session.send(*self._position_multi(req_id, inst))
        # P&L goes out with the next look at the clock (the end of a replayed step, or the
        # timer), with the prices the step ends on.

    # --- account updates ------------------------------------------------------------------------
    def _req_account_updates(self, session: _Session, fields: list[str]) -> None:
        # [6, version 2, subscribe, account]
        with self.market.lock, self._lock:
            if fields[2] != "1":
                self._updates.pop(session, None)
                return
            sent: dict[str, str] = {}
            self._updates[session] = sent
            self._send_values(session, self._values(), sent, changed_only=False)
            for inst in list(self.market.portfolio.positions):
                session.send(*self._portfolio_row(inst))
            session.send(ACCOUNT_TIME, 1, self._clock_text())
            session.send(ACCOUNT_DOWNLOAD_END, 1, self.account)

    def _req_account_updates_multi(self, session: _Session, fields: list[str]) -> None:
        # [76, version 1, reqId, account, modelCode, ledgerAndNLV]
        req_id = int(fields[2])
        with self.market.lock, self._lock:
            sent: dict[str, str] = {}
            self._multi[(session, req_id)] = sent
            self._send_multi(session, req_id, self._values(), sent, changed_only=False)
            session.send(ACCOUNT_UPDATE_MULTI_END, 1, req_id)

    def _cancel_account_updates_multi(self, session: _Session, fields: list[str]) -> None:
        with self._lock:
            self._multi.pop((session, int(fields[2])), None)

    def _send_values(
        self, session: _Session, values: Values, sent: dict[str, str], *, changed_only: bool
    ) -> None:
        for key, value, currency in _due(values, sent, changed_only):
            session.send(*m.account_value(key, value, currency, self.account))

    def _send_multi(
        self,
        session: _Session,
        req_id: int,
        values: Values,
        sent: dict[str, str],
        *,
        changed_only: bool,
    ) -> None:
        for key, value, currency in _due(values, sent, changed_only):
            session.send(ACCOUNT_UPDATE_MULTI, 1, req_id, self.account, "", key, value, currency)

    def _portfolio_row(self, inst: Instrument) -> list[object]:
        pos = self.market.portfolio.position(inst)  # a closed position: quantity 0
        price = pos.market_price if pos.market_price == pos.market_price else 0.0
        return m.portfolio_value(
            inst, self.market.con_ids[inst], pos.quantity, price,
            float(pos.avg_price * inst.multiplier), float(pos.realized_pnl), self.account,
        )  # fmt: skip

    def _tick(self, now: int) -> None:
        """The three-minute update: changed values, every position, the time."""
        values = self._values()
        rows = [self._portfolio_row(inst) for inst in self.market.portfolio.positions]
        for session, sent in self._updates.items():
            self._send_values(session, values, sent, changed_only=True)
            for row in rows:
                session.send(*row)
            session.send(ACCOUNT_TIME, 1, self._clock_text(now))
        for (session, req_id), sent in self._multi.items():
            self._send_multi(session, req_id, values, sent, changed_only=True)
        for (session, req_id), summary in self._summaries.items():
            self._send_summary(session, req_id, summary, values, changed_only=True)

    def _clock_text(self, now: int | None = None) -> str:
        now = self._now_ns() if now is None else now
        return dt.datetime.fromtimestamp(now / 1e9, dt.UTC).strftime("%H:%M")

    # --- positions of an account or model -----------------------------------------------------
    def _req_positions_multi(self, session: _Session, fields: list[str]) -> None:
        # [74, version 1, reqId, account, modelCode]
        req_id = int(fields[2])
        if not self._right_account(session, req_id, fields[3] if len(fields) > 3 else ""):
            return
        with self.market.lock, self._lock:
            self._positions_multi.add((session, req_id))
            for inst in list(self.market.portfolio.positions):
                session.send(*self._position_multi(req_id, inst))
            session.send(POSITION_MULTI_END, 1, req_id)

    def _cancel_positions_multi(self, session: _Session, fields: list[str]) -> None:
        with self._lock:
            self._positions_multi.discard((session, int(fields[2])))

    def _position_multi(self, req_id: int, inst: Instrument) -> list[object]:
        pos = self.market.portfolio.position(inst)
        contract = m.contract_fields(inst, self.market.con_ids[inst])
        avg_cost = float(pos.avg_price * inst.multiplier)
        return [POSITION_MULTI, 1, req_id, self.account, *contract, pos.quantity, avg_cost, ""]

    # --- account summary ------------------------------------------------------------------------
    def _req_account_summary(self, session: _Session, fields: list[str]) -> None:
        # [62, version 1, reqId, group, tags]
        req_id = int(fields[2])
        text = fields[4] if len(fields) > 4 else ""
        tags = frozenset(t.strip() for t in text.split(","))
        with self.market.lock, self._lock:
            held = sum(1 for s, r in self._summaries if s is session and r != req_id)
            if held >= MAX_ACCOUNT_SUMMARIES:
                session.error(req_id, 322, SUMMARY_LIMIT_TEXT)
                return
            summary = _Summary(tags, {})
            self._summaries[(session, req_id)] = summary
            self._send_summary(session, req_id, summary, self._values(), changed_only=False)
            session.send(ACCOUNT_SUMMARY_END, 1, req_id)

    def _cancel_account_summary(self, session: _Session, fields: list[str]) -> None:
        with self._lock:
            self._summaries.pop((session, int(fields[2])), None)

    def _send_summary(
        self,
        session: _Session,
        req_id: int,
        summary: _Summary,
        values: Values,
        *,
        changed_only: bool,
    ) -> None:
        asked = {tag: values[tag] for tag in values if tag in summary.tags}
        for tag, value, currency in _due(asked, summary.sent, changed_only):
            session.send(*m.account_summary(req_id, self.account, tag, value, currency))

    def active_summaries(self, client_id: int) -> list[int]:
        """The request ids of a client's account summary subscriptions still open."""
        with self._lock:
            return sorted(r for s, r in self._summaries if s.client_id == client_id)

    # --- P&L ------------------------------------------------------------------------------------
    def _req_pnl(self, session: _Session, fields: list[str]) -> None:
        # [92, reqId, account, modelCode]: no version field
        req_id = int(fields[1])
        if not self._right_account(session, req_id, fields[2] if len(fields) > 2 else ""):
            return
        self._subscribe_pnl(session, req_id, _Pnl(None))

    def _req_pnl_single(self, session: _Session, fields: list[str]) -> None:
        # [94, reqId, account, modelCode, conId]
        req_id = int(fields[1])
        if not self._right_account(session, req_id, fields[2] if len(fields) > 2 else ""):
            return
        try:
            con_id = int(fields[4])
        except (IndexError, ValueError):
            con_id = 0
        if con_id not in self.market.con_ids.values():
            session.error(req_id, 200, "No security definition has been found for the request")
            return
        self._subscribe_pnl(session, req_id, _Pnl(con_id))

    def _right_account(self, session: _Session, req_id: int, account: str) -> bool:
        if account == self.account:
            return True
        session.error(
            req_id,
            321,
            f"Error validating request:-'cd' : cause - account {account!r} is not managed "
            f"here (the account is {self.account})",
        )
        return False

    def _subscribe_pnl(self, session: _Session, req_id: int, sub: _Pnl) -> None:
        now = self._now_ns()
        with self.market.lock, self._lock:
            self._look(now)
            self._pnl[(session, req_id)] = sub
            self._send_one_pnl(session, req_id, sub, now, changed_only=False)

    def _cancel_pnl(self, session: _Session, fields: list[str]) -> None:
        with self._lock:
            self._pnl.pop((session, int(fields[1])), None)

    def _send_pnl(self, now: int, *, changed_only: bool) -> None:
        for (session, req_id), sub in self._pnl.items():
            self._send_one_pnl(session, req_id, sub, now, changed_only=changed_only)

    def _send_one_pnl(
        self, session: _Session, req_id: int, sub: _Pnl, now: int, *, changed_only: bool
    ) -> None:
        message = self._pnl_message(req_id, sub)
        if changed_only and tuple(message[2:]) == (sub.sent or ())[2:]:
            return
        if changed_only and 0 <= now - sub.sent_ns < self.pnl_interval_ns:
            return  # sent by a later look, once the interval has passed
        sub.sent, sub.sent_ns = tuple(message), now
        session.send(*message)

    def _pnl_message(self, req_id: int, sub: _Pnl) -> list[object]:
        pf = self.market.portfolio
        mark = self._mark
        assert mark is not None  # _look() ran first
        if sub.con_id is None:
            unrealized = sum(p.unrealized_pnl for p in pf.positions.values())
            realized = self._net_realized() - mark.realized
            daily = pf.equity - mark.equity
            return [PNL, req_id, _money(daily), _money(unrealized), _money(realized)]
        inst = next(i for i, c in self.market.con_ids.items() if c == sub.con_id)
        pos = pf.position(inst)
        held = pos.quantity != 0
        unrealized = pos.unrealized_pnl
        realized = float(pos.realized_pnl - pos.commission)
        total = realized + unrealized
        daily = total - mark.pnl.get(inst, 0.0)
        realized_today = realized - (mark.pnl.get(inst, 0.0) - mark.unrealized.get(inst, 0.0))
        value = pos.market_value if held else 0.0
        return [
            PNL_SINGLE, req_id, _quantity(pos.quantity), _money(daily), _money(unrealized),
            _money(realized_today), _money(value),
        ]  # fmt: skip

    def _look(self, now: int) -> None:
        """Look at the account: on a new day, the day's P&L counts from the last look before."""
        pf = self.market.portfolio
        day = dt.datetime.fromtimestamp(now / 1e9, _PNL_ZONE).date()
        per: dict[Instrument, float] = {}
        unrealized: dict[Instrument, float] = {}
        for inst in self.market.con_ids:
            pos = pf.position(inst)
            unrealized[inst] = pos.unrealized_pnl
            per[inst] = float(pos.realized_pnl - pos.commission) + unrealized[inst]
        seen = _Mark(day, pf.equity, self._net_realized(), per, unrealized)
        if self._mark is None:
            self._mark = seen
        elif day != self._mark.day:  # the previous day's last look is its close
            self._mark = attrs.evolve(self._seen or seen, day=day)
        self._seen = seen

    def _net_realized(self) -> float:
        """The account's realised P&L so far, net of commissions."""
        pf = self.market.portfolio
        total = Decimal(0)
        for inst in self.market.con_ids:
            pos = pf.position(inst)
            total += pos.realized_pnl - pos.commission
        return float(total)

    # --- housekeeping ---------------------------------------------------------------------------
    def _forget_closed(self) -> None:
        for session in [s for s in self._updates if s.closed.is_set()]:
            del self._updates[session]
        for table in (self._multi, self._summaries, self._pnl):
            for key in [k for k in table if k[0].closed.is_set()]:
                del table[key]
        self._positions_multi = {k for k in self._positions_multi if not k[0].closed.is_set()}


def _money(value: float) -> float:
    """An amount to the cent, as a float: 0.0 for nothing (not -0.0, nor an integer 0)."""
    return float(round(value, 2)) + 0.0  # adding 0.0 turns -0.0 into 0.0


def _quantity(value: Decimal) -> object:
    return int(value) if value == value.to_integral_value() else value


def _due(values: Values, sent: dict[str, str], changed_only: bool) -> list[tuple[str, str, str]]:
    """The values to send (all, or those changed since ``sent``), noted in ``sent``."""
    due = [
        (key, value, currency)
        for key, (value, currency) in values.items()
        if not (changed_only and sent.get(key) == value)
    ]
    sent.update((key, value) for key, value, _ in due)
    return due
