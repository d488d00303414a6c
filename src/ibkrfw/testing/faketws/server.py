"""FakeTWS: a server on 127.0.0.1 that speaks the TWS socket protocol to unmodified clients."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import TYPE_CHECKING, Literal, final
from zoneinfo import ZoneInfo

import attrs
import numpy as np

from ibkrfw._net import is_loopback
from ibkrfw.core.clock import Clock
from ibkrfw.errors import ConfigError, OrderError
from ibkrfw.model._decimal import DecimalLike, float_decimal, to_decimal
from ibkrfw.model._time import parse_ib_time
from ibkrfw.model.algos import algo_from_params
from ibkrfw.model.data import Bar, Quote
from ibkrfw.model.events import (
    OrderAccepted,
    OrderCancelled,
    OrderCancelRejected,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderModified,
    OrderModifyRejected,
    OrderRejected,
)
from ibkrfw.model.instruments import Instrument, Option
from ibkrfw.model.orders import (
    Order,
    OrderRequest,
    OrderType,
    Side,
    TimeInForce,
    check_modification,
    check_request,
)
from ibkrfw.risk.account import IB_INITIAL_MARGIN, BuyingPower, MarginSpec, margin_rates
from ibkrfw.sim.commission import NOTHING_YET, CommissionModel
from ibkrfw.sim.slippage import SlippageModel
from ibkrfw.testing.faketws import messages as m
from ibkrfw.testing.faketws.account import AccountStreams
from ibkrfw.testing.faketws.market import Market
from ibkrfw.testing.faketws.market_data import MarketDataRequests
from ibkrfw.testing.faketws.wire import (
    HANDSHAKE_PREFIX,
    SERVER_VERSION,
    UNSET_DOUBLE,
    FrameReader,
    WireError,
    encode_fields,
    frame,
    is_unset,
    parse_version_range,
    split_fields,
)

if TYPE_CHECKING:
    import pandas as pd

    from ibkrfw.data.store import BarStore

__all__ = ["FakeTWS", "Recorded"]

log = logging.getLogger("ibkrfw.testing.faketws")

# Incoming (client -> server) message ids
START_API, REQ_CURRENT_TIME, REQ_IDS = 71, 49, 8
REQ_MKT_DATA, CANCEL_MKT_DATA, REQ_MARKET_DATA_TYPE = 1, 2, 59
PLACE_ORDER, CANCEL_ORDER, REQ_OPEN_ORDERS, REQ_ALL_OPEN_ORDERS = 3, 4, 5, 16
REQ_EXECUTIONS, REQ_CONTRACT_DETAILS = 7, 9
REQ_POSITIONS = 61
CANCEL_POSITIONS, REQ_MANAGED_ACCTS = 64, 17
REQ_HISTORICAL_DATA, CANCEL_HISTORICAL_DATA = 20, 25
REQ_REAL_TIME_BARS, CANCEL_REAL_TIME_BARS = 50, 51
REQ_COMPLETED_ORDERS = 99
REQ_GLOBAL_CANCEL = 58
ALGO_FIELD = 83  # placeOrder's algoStrategy (v157, no combo legs or scale fields)
WHAT_IF_FIELD = 85  # placeOrder's whatIf flag without an algo; each algo parameter shifts it
TICK_LAST_TIMESTAMP, TICK_HALTED = 45, 49
TICK_SNAPSHOT_END = 57  # an outgoing message id
PACING_TEXT = (
    "Historical Market Data Service error message:API historical data query cancelled: "
    "pacing violation"
)
_TICK_S = 0.2  # how often the account streams look at the clock when nothing is replayed
_SETTLE_S = 1.0  # how long messages() waits for requests being handled to be recorded
_DAILY_SIZES = ("day", "days", "week", "weeks", "month")  # bar sizes dated yyyymmdd
_DURATION_UNITS = {"S": 1, "D": 86_400, "W": 7 * 86_400, "M": 30 * 86_400, "Y": 365 * 86_400}
# Outgoing (server -> client) message ids
ERROR, NEXT_VALID_ID, MANAGED_ACCOUNTS, CURRENT_TIME = 4, 9, 15, 49

FARMS_OK = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)
CLIENT_ID_IN_USE = (
    "Unable to connect as the client id is already in use. Retry with a unique client id."
)


@final
@attrs.frozen
class Recorded:
    """One message that crossed the socket.

    Args:
        direction: ``"in"`` from the client, ``"out"`` to it.
        client_id: The connection's client id (None before ``startApi``).
        fields: The message's fields as text, the message id first.
        at: When, as ``time.monotonic()``: when a message from a client was read off the
            socket (its record is added only once it has been handled), or when a message to
            a client was about to be written.
    """

    direction: Literal["in", "out"]
    client_id: int | None
    fields: tuple[str, ...]
    at: float

    @property
    def msg_id(self) -> int:
        """The message id (field 0)."""
        return int(self.fields[0]) if self.fields and self.fields[0].isdigit() else -1


class _Session:
    """One client connection, served by its own thread."""

    def __init__(self, server: FakeTWS, sock: socket.socket, peer: object) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        self.client_id: int | None = None
        self.handling = False  # a request is being handled (changed under the server's lock)
        self._send_lock = threading.Lock()
        self.closed = threading.Event()
        self.thread = threading.Thread(
            target=self._serve, name=f"faketws-session-{peer}", daemon=True
        )

    # --- sending ------------------------------------------------------------------------------
    def send(self, *fields: object) -> None:
        """Send one message; a closed connection drops it silently (as TWS would)."""
        payload = encode_fields(fields)
        with self._send_lock:
            if self.closed.is_set():
                return
            # Recorded before it goes out: a message the client has read is always on record.
            self.server._record("out", self.client_id, split_fields(payload))
            try:
                self.sock.sendall(frame(payload))
            except OSError as exc:
                self._send_failed(exc)

    def send_many(self, messages: list[tuple[object, ...]]) -> None:
        """Send several messages in one write (one change of a book, as TWS sends it), recorded."""
        if not messages:
            return
        payloads = [encode_fields(fields) for fields in messages]
        with self._send_lock:
            if self.closed.is_set():
                return
            for payload in payloads:
                self.server._record("out", self.client_id, split_fields(payload))
            try:
                self.sock.sendall(b"".join(frame(payload) for payload in payloads))
            except OSError:
                self.close()

    def send_frames(self, data: bytes) -> None:
        """Write messages already framed, unrecorded (a burst); a closed connection drops them."""
        with self._send_lock:
            if self.closed.is_set():
                return
            try:
                self.sock.sendall(data)
            except OSError as exc:
                self._send_failed(exc)

    def _send_failed(self, exc: OSError) -> None:
        if isinstance(exc, (BlockingIOError, TimeoutError)):  # the send time limit ran out
            log.warning(
                "fake TWS: client %s read nothing for %.1f s with its buffers full; "
                "disconnected (FakeTWS.send_timeout_s)",
                self.client_id,
                self.server.send_timeout_s,
            )
        self.close()

    def error(self, req_id: int, code: int, text: str) -> None:
        self.send(ERROR, 2, req_id, code, text)

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.server._forget(self)

    # --- receiving ----------------------------------------------------------------------------
    def _serve(self) -> None:
        try:
            self._handshake_and_loop()
        except (OSError, WireError) as exc:
            if not self.closed.is_set():
                log.info("fake TWS: connection from %s ended: %s", self.peer, exc)
        finally:
            self.close()

    def _handshake_and_loop(self) -> None:
        reader = FrameReader(self.sock)
        prefix = reader.read_exact(len(HANDSHAKE_PREFIX))
        if prefix != HANDSHAKE_PREFIX:
            raise WireError(f"expected the API handshake prefix, got {prefix!r}")
        payload = reader.read_frame()
        if payload is None:
            return
        text = payload.decode("ascii", "replace")
        self.server._record("in", None, [text])
        low, high, _ = parse_version_range(text)
        if not low <= SERVER_VERSION <= high:
            log.error(
                "fake TWS: the client supports server versions %d..%d, and the fake speaks only "
                "%d; closing the connection",
                low,
                high,
                SERVER_VERSION,
            )
            return
        self.send(SERVER_VERSION, time.strftime("%Y%m%d %H:%M:%S UTC", time.gmtime()))
        while not self.closed.is_set():
            payload = reader.read_frame()
            if payload is None:
                return
            arrived = time.monotonic()
            fields = split_fields(payload)
            client_id = self.client_id
            with self.server._lock:
                self.handling = True
            try:
                if fields:
                    self.server._dispatch(self, fields)
            finally:  # recorded once handled: seeing it recorded means the fake has acted on it
                self.server._record("in", client_id, fields, at=arrived, handled_by=self)


@final
class FakeTWS:
    """A stand-in for TWS or IB Gateway that unmodified API clients connect to.

    It listens on 127.0.0.1 and speaks the real socket protocol at server version 157, the
    version every supported client accepts (ibapi 9.81 and 10.x, ib_async). Each connection
    is served by its own thread; every message in and out is recorded, so a test can assert
    what a client sent.

    Args:
        host: The address to listen on: 127.0.0.1 unless you mean otherwise. Any other
            address (``0.0.0.0``: every interface) is logged as a warning: the fake asks for
            no login, so anyone who can reach it can place orders on its account.
        port: The port; 0 picks a free one (read it from :attr:`port` after :meth:`start`).
        account: The account id announced to clients (a paper-style ``DU`` id by default).
        next_order_id: The first order id announced by ``nextValidId``.
        data: The bars to replay, per instrument (the layout of
            :class:`~ibkrfw.sim.DataFrameFeed`); :meth:`step` replays one time stamp.
        cash: The account's starting cash.
        commission: The commission model of fills (none by default).
        volume_limit: The largest share of a bar's volume orders may take (partial fills).
        quotes: Top-of-book quotes to replay, per instrument (``bid``, ``ask``, optionally
            ``bid_size``, ``ask_size``): they stream as bid and ask and reach the broker.
        fill_on: What orders fill on (:class:`~ibkrfw.sim.SimBroker`'s ``fill_on``): the bars,
            or the quotes (buys at the ask, sells at the bid). By default the bars, or the
            quotes when only quotes are replayed.
        slippage: The slippage model of fills (e.g. :class:`~ibkrfw.sim.HalfSpreadSlippage`,
            which then uses the replayed quotes).
        initial_margin: The account's initial margin rates, by asset class (IB's Regulation T
            rates by default); the maintenance margin is half of it. The account values
            (``InitMarginReq``, ``MaintMarginReq``, ``AvailableFunds``, ``ExcessLiquidity``,
            ``BuyingPower``) follow from them and the positions at their last price.
        account_kind: ``"margin"`` (the default: a Regulation T margin account, which may
            borrow up to the initial margin) or ``"cash"`` (no borrowing, no short sales:
            ``BuyingPower`` is the cash). A new order the account cannot pay for is rejected
            as TWS rejects it, with error 201 (see :class:`~ibkrfw.risk.BuyingPower` for how
            orders are valued).

        clock: The clock that stamps executions with the time they happened, as TWS stamps
            them: the wall clock by default. A test that drives time gives its own clock, or
            ``"replay"`` to stamp each fill with its simulated time (its bar's, as a backtest
            has it), as :class:`~ibkrfw.testing.LiveSession` does.

    Orders rest, fill, partially fill and are cancelled by a
    :class:`~ibkrfw.sim.SimBroker` on the replayed bars: the fill rules of a backtest.

    Raises:
        ConfigError: if ``account`` is empty, ``account_kind`` is neither ``"margin"`` nor
            ``"cash"``, or a margin rate is not in (0, 1].

    Example:
        >>> with FakeTWS() as tws:
        ...     tws.port > 0
        True
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        account: str = "DU1234567",
        next_order_id: int = 1,
        data: Mapping[Instrument, pd.DataFrame] | None = None,
        cash: DecimalLike = 1_000_000,
        commission: CommissionModel | None = None,
        volume_limit: float | None = None,
        quotes: Mapping[Instrument, pd.DataFrame] | None = None,
        slippage: SlippageModel | None = None,
        fill_on: Literal["bars", "quotes"] | None = None,
        initial_margin: MarginSpec = IB_INITIAL_MARGIN,
        account_kind: Literal["margin", "cash"] = "margin",
        clock: Clock | Literal["replay"] | None = None,
    ) -> None:
        if not account:
            raise ConfigError("the fake TWS needs an account id")
        if account_kind not in ("margin", "cash"):
            raise ConfigError(
                f"FakeTWS(account_kind=...): {account_kind!r} is not an account kind; "
                "give 'margin' (Reg T, the default) or 'cash'"
            )
        self.account_kind = account_kind
        self.clock: Clock | Literal["replay"] | None = clock
        """The clock that stamps executions (None for the wall clock, or ``"replay"``); settable."""
        self._send_timeout_s = 10.0
        self.network_warning: str | None = (
            None
            if is_loopback(host)
            else f"the fake TWS listens on {host or 'every address'}, open to the network, "
            "and asks for no login: anyone who can reach this machine can place orders on "
            f"its account {account}; listen on 127.0.0.1 unless that is what you want"
        )
        """The warning about listening off loopback (logged when built), None on loopback."""
        self.request_errors: list[tuple[int, BaseException]] = []
        """The requests the fake could not read, each as its message id and the error.

        Each was answered with TWS's error 320 and logged with its traceback, and the
        connection stayed open. A test that sends only well-formed requests can assert that
        this stays empty."""
        self.replay_error: BaseException | None = None
        """What stopped a background :meth:`play` early (logged with its traceback), or None."""
        if self.network_warning is not None:
            log.warning("%s", self.network_warning)
        self.margin_rates = margin_rates(initial_margin)
        self.market = Market(
            data or {},
            cash=to_decimal(cash, "cash"),
            commission=commission,
            volume_limit=volume_limit,
            on_event=self._order_event,
            quotes=quotes,
            slippage=slippage,
            fill_on=fill_on or ("bars" if data else "quotes"),
            account=account_kind,
            initial_margin=self.margin_rates,
        )
        rules = self.market.broker.account_rules
        self._buying_power = next(r for r in rules if isinstance(r, BuyingPower))
        # (client id, the client's order id) -> the market's order id, and back
        self._order_ids: dict[tuple[int, int], int] = {}
        self._owners: dict[int, tuple[int, int]] = {}
        self._executions: list[
            tuple[int, list[object], list[object] | None]
        ] = []  # client, exec, report
        self._subscriptions: dict[tuple[int, int], tuple[_Session, Instrument]] = {}
        # keepUpToDate history requests: (client, request) -> session, instrument, date style
        self._history_updates: dict[
            tuple[int, int], tuple[_Session, Instrument, tuple[str, bool]]
        ] = {}
        self._realtime: dict[tuple[int, int], tuple[_Session, Instrument]] = {}
        self._position_subscribers: set[_Session] = set()  # reqPositions until cancelPositions
        self._untransmitted: dict[tuple[int, int], list[Order]] = {}  # (client, root order id)
        self._completed_at: dict[int, int] = {}  # market order id -> when it ended, fake's clock
        # scripted faults
        self._pacing_left = 0
        self._rejections: list[tuple[int, str]] = []
        self._duplicates_left = 0
        self._lose_left = 0  # placeOrder messages to swallow, as if lost on the wire
        self._lose_after = 0  # new orders to let through first
        self._commissions_withheld = 0  # fills whose commission report never comes
        self._corrupt: dict[str, float] = {}  # fields to replace in the next real-time bar
        self._holding = False
        self._held: list[tuple[_Session, list[object]]] = []
        self._player: threading.Thread | None = None
        self._playing = threading.Event()
        self.host = host
        self._port = port
        self.account = account
        self.next_order_id = next_order_id
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._sessions: list[_Session] = []
        # Re-entrant: wait_for() holds it while its condition reads the records.
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._records: list[Recorded] = []
        self._stopping = threading.Event()
        self._market_data = MarketDataRequests(self.market, self._contract_of)
        self.accounts = AccountStreams(self.market, account, self._account_values, self._now_ns)
        """The account subscriptions (account updates, summaries, P&L) and their cadence."""
        self._ticker: threading.Thread | None = None
        self._handlers: dict[int, Callable[[_Session, list[str]], None]] = {
            START_API: self._start_api,
            REQ_CURRENT_TIME: self._current_time,
            REQ_IDS: self._req_ids,
            REQ_MANAGED_ACCTS: self._req_managed_accounts,
            REQ_CONTRACT_DETAILS: self._contract_details,
            REQ_MKT_DATA: self._req_mkt_data,
            CANCEL_MKT_DATA: self._cancel_mkt_data,
            REQ_MARKET_DATA_TYPE: lambda session, fields: None,  # only live data is simulated
            PLACE_ORDER: self._place_order,
            CANCEL_ORDER: self._cancel_order,
            REQ_OPEN_ORDERS: self._open_orders,
            REQ_ALL_OPEN_ORDERS: self._open_orders,
            REQ_EXECUTIONS: self._req_executions,
            REQ_POSITIONS: self._req_positions,
            CANCEL_POSITIONS: self._cancel_positions,
            REQ_HISTORICAL_DATA: self._req_history,
            CANCEL_HISTORICAL_DATA: self._cancel_history,
            REQ_REAL_TIME_BARS: self._req_realtime,
            CANCEL_REAL_TIME_BARS: self._cancel_realtime,
            REQ_COMPLETED_ORDERS: self._completed_orders,
            REQ_GLOBAL_CANCEL: self._global_cancel,
            **self._market_data.handlers(),  # depth, ticks, head time stamp, symbols, options
            **self.accounts.handlers(),  # account updates and summaries, P&L
        }

    # --- life cycle ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The port it listens on (known once started)."""
        return self._port

    @property
    def send_timeout_s(self) -> float:
        """How long a send may wait on a client that reads nothing before it is disconnected.

        Ten seconds by default. The fake sends under its market's lock, so a client that stopped
        reading would otherwise stall the replay and every other client once its socket's
        buffers are full. Settable; applies to connections made afterwards.

        Raises:
            ConfigError: if set to anything but a positive number of seconds.
        """
        return self._send_timeout_s

    @send_timeout_s.setter
    def send_timeout_s(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
            raise ConfigError(
                f"FakeTWS.send_timeout_s must be a positive number of seconds, got {seconds!r}"
            )
        self._send_timeout_s = float(seconds)

    def start(self) -> FakeTWS:
        """Start listening; returns itself, so ``tws = FakeTWS().start()`` works.

        Raises:
            ConfigError: if it runs already.
        """
        if self._listener is not None:
            raise ConfigError("the fake TWS is running already")
        listener = socket.create_server((self.host, self._port))
        self._port = listener.getsockname()[1]
        self._listener = listener
        self._stopping.clear()
        self._accept_thread = threading.Thread(
            target=self._accept, name="faketws-accept", daemon=True
        )
        self._accept_thread.start()
        self._ticker = threading.Thread(target=self._tick, name="faketws-ticker", daemon=True)
        self._ticker.start()
        log.info("fake TWS listening on %s:%d", self.host, self._port)
        return self

    def _tick(self) -> None:
        """Let the account streams see time pass when nothing is replayed (TWS's timers)."""
        while not self._stopping.wait(_TICK_S):
            try:
                self.accounts.on_time()
            except Exception:  # a client gone mid-send must not stop the timer
                log.exception("fake TWS: account update failed")

    def _now_ns(self) -> int:
        """The fake's clock: the wall clock, the given clock, or the replayed time."""
        clock = self.clock
        if clock is None:
            return time.time_ns()
        if clock == "replay":
            return self.market.clock.now_ns() if self.market.position >= 0 else time.time_ns()
        return clock.now_ns()

    def stop(self, timeout: float = 5.0) -> None:
        """Close every connection and stop listening (waits at most ``timeout`` seconds)."""
        self.pause(timeout)
        self._stopping.set()
        for thread in (self._accept_thread, self._ticker):
            if thread is not None:
                thread.join(timeout)
        self._accept_thread = self._ticker = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for session in self._connected():
            session.close()
            session.thread.join(timeout)

    def __enter__(self) -> FakeTWS:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _accept(self) -> None:
        listener = self._listener
        if listener is None:
            return
        listener.settimeout(0.05)  # closing a socket does not wake accept(): poll for stop()
        while not self._stopping.is_set():
            try:
                sock, peer = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by stop()
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _limit_send_time(sock, self.send_timeout_s)
            session = _Session(self, sock, peer)
            with self._lock:
                self._sessions.append(session)
                self._changed.notify_all()
            session.thread.start()

    def _connected(self) -> list[_Session]:
        with self._lock:
            return list(self._sessions)

    def _forget(self, session: _Session) -> None:
        with self._lock:
            if session in self._sessions:
                self._sessions.remove(session)
            self._changed.notify_all()

    # --- what happened ------------------------------------------------------------------------
    def _record(
        self,
        direction: Literal["in", "out"],
        client_id: int | None,
        fields: Sequence[str],
        *,
        at: float | None = None,
        handled_by: _Session | None = None,
    ) -> None:
        when = time.monotonic() if at is None else at
        with self._lock:
            self._records.append(Recorded(direction, client_id, tuple(fields), when))
            if handled_by is not None:
                handled_by.handling = False
            self._changed.notify_all()

    @property
    def client_ids(self) -> list[int]:
        """The client ids connected now (after their ``startApi``)."""
        return [s.client_id for s in self._connected() if s.client_id is not None]

    def messages(
        self,
        direction: Literal["in", "out"] | None = None,
        *,
        client_id: int | None = None,
        msg_id: int | None = None,
    ) -> list[Recorded]:
        """Return the recorded messages, oldest first, optionally filtered.

        A message from a client is recorded once the fake has handled it, so seeing it here
        (for instance in :meth:`wait_for`) means its effects have happened. A request whose
        reply a client has read is here too: the list is taken once no request is half
        handled (waiting at most a second for that). A message to a client is recorded just
        before it is written, so one the client has read is always here.
        """
        deadline = time.monotonic() + _SETTLE_S
        me = threading.current_thread()
        with self._changed:
            while any(s.handling and s.thread is not me for s in self._sessions):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            records = list(self._records)
        return [
            r
            for r in records
            if (direction is None or r.direction == direction)
            and (client_id is None or r.client_id == client_id)
            and (msg_id is None or r.msg_id == msg_id)
        ]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Wait until ``condition()`` holds; return False if ``timeout`` seconds pass first.

        The condition is checked again whenever a message passes or a client comes or goes.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.1))
        return True

    # --- fault injection ------------------------------------------------------------------------
    def _targets(self, client_id: int | None) -> list[_Session]:
        return [
            s
            for s in self._connected()
            if s.client_id is not None and (client_id is None or s.client_id == client_id)
        ]

    def drop_connections(self, client_id: int | None = None) -> None:
        """Close the connection of ``client_id`` (every client's if None), as a crash would."""
        for session in self._targets(client_id):
            session.close()

    def send_error(
        self, code: int, text: str, *, req_id: int = -1, client_id: int | None = None
    ) -> None:
        """Send an error (or notice) message to one client or all of them."""
        for session in self._targets(client_id):
            session.error(req_id, code, text)

    def connectivity_lost(self, client_id: int | None = None) -> None:
        """Tell clients that TWS lost its connection to IB (1100)."""
        self.send_error(
            1100,
            "Connectivity between IB and Trader Workstation has been lost.",
            client_id=client_id,
        )

    def connectivity_restored(self, *, data_kept: bool, client_id: int | None = None) -> None:
        """Tell clients the connection is back: 1102 if market data was kept, else 1101."""
        restored = "Connectivity between IB and Trader Workstation has been restored"
        if data_kept:
            self.send_error(1102, f"{restored} - data maintained.", client_id=client_id)
        else:
            self.send_error(1101, f"{restored} - data lost.", client_id=client_id)

    def pace_history(self, requests: int = 1) -> None:
        """Answer the next ``requests`` historical data requests with error 162 (pacing).

        Replaces what an earlier call asked for: ``pace_history(0)`` answers normally again.
        """
        self._pacing_left = max(0, requests)

    def reject_next_order(
        self, code: int = 201, text: str = "Order rejected - reason:test"
    ) -> None:
        """Answer the next new order (of any client) with this error instead of placing it."""
        self._rejections.append((code, text))

    def duplicate_next_execution(self, count: int = 1) -> None:
        """Send the execution and commission report of the next ``count`` fills twice."""
        self._duplicates_left += count

    def lose_next_order(self, count: int = 1, *, after: int = 0) -> None:
        """Swallow the next ``count`` new orders (``after`` others first), dropping the socket.

        Each ``placeOrder`` is recorded as received (so :meth:`messages` shows what the client
        sent) but never reaches the simulated market: TWS never heard of it, as when the
        message dies on the wire and the connection with it. The client's order stays
        unacknowledged; only its reconciliation after reconnecting can tell it is lost.
        ``after=2`` loses the third order of a bracket, the one that transmits the group.
        """
        self._lose_left += count
        self._lose_after = after

    def withhold_commission_reports(self, count: int = 1) -> None:
        """Never send the commission report of the next ``count`` fills.

        Their executions are reported (and again on ``reqExecutions``), their commissions
        never: as when TWS's commission report does not arrive (another client's fills
        without the master client id, or a report lost to a disconnection).
        """
        self._commissions_withheld += count

    def corrupt_next_bar(self, **fields: float) -> None:
        """Send the next replayed real-time bar with these fields replaced.

        For example ``corrupt_next_bar(high=float("nan"))`` or ``corrupt_next_bar(low=-1)``:
        a malformed bar, as a broken data line may deliver one. Keys: ``open``, ``high``,
        ``low``, ``close``.
        """
        unknown = set(fields) - {"open", "high", "low", "close"}
        if unknown:
            raise ConfigError(f"a bar has no field {sorted(unknown)[0]!r}")
        self._corrupt = dict(fields)

    def corrupt_next_depth(self, **fields: float) -> None:
        """Send the next market depth row with these fields replaced.

        For example ``corrupt_next_depth(size=-1)`` or ``corrupt_next_depth(position=7)``
        (an insert beyond the book: a gap): a malformed update, as a broken data line may
        deliver one. The fake's own book stays as it should be, so a client that subscribes
        again gets a sound snapshot. Keys: ``position``, ``operation``, ``side``, ``price``,
        ``size``.
        """
        self._market_data.corrupt_next_depth(**fields)

    def hold_acknowledgements(self) -> None:
        """Withhold order messages (openOrder, orderStatus, executions) until released."""
        with self._lock:
            self._holding = True

    def release_acknowledgements(self, after: float = 0.0) -> None:
        """Send the withheld order messages, now or ``after`` seconds from now."""
        if after > 0:
            timer = threading.Timer(after, self.release_acknowledgements)
            timer.daemon = True
            timer.start()
            return
        with self._lock:
            self._holding = False
            held, self._held = self._held, []
        for session, message in held:
            session.send(*message)

    def restart(self, *, next_order_id: int | None = None) -> None:
        """Drop every connection, as a TWS restart does.

        With ``next_order_id``, clients that reconnect are told that id by ``nextValidId``,
        lower ones included (a real TWS can do so after a reset).
        """
        self.drop_connections()
        if next_order_id is not None:
            self.next_order_id = next_order_id

    # --- messages ---------------------------------------------------------------------------------
    def _dispatch(self, session: _Session, fields: list[str]) -> None:
        try:
            msg_id = int(fields[0])
        except ValueError:
            log.warning("fake TWS: a message without a numeric id: %r", fields[:3])
            return
        if session.client_id is None and msg_id != START_API:
            log.warning("fake TWS: message %d before startApi ignored", msg_id)
            return
        handler = self._handlers.get(msg_id)
        if handler is None:
            log.info("fake TWS: message %d is not served; answered as TWS does", msg_id)
            MarketDataRequests.unsupported(session, msg_id, fields)
            return
        try:
            handler(session, fields)
        except OSError:
            raise  # the connection itself: ends the session
        except Exception as exc:  # a request the fake cannot read must not end the connection
            log.exception("fake TWS: could not read message %d %r", msg_id, fields[:6])
            session.error(-1, 320, f"Error reading request: message {msg_id}: {exc}")
            self.request_errors.append((msg_id, exc))

    def _start_api(self, session: _Session, fields: list[str]) -> None:
        try:
            client_id = int(fields[2])
        except (IndexError, ValueError):
            session.error(-1, 321, f"Error validating request: bad client id in {fields!r}")
            session.close()
            return
        with self._changed:  # checked and taken at once: two clients may race for one id
            taken = any(s.client_id == client_id for s in self._sessions)
            if not taken:
                session.client_id = client_id
                self._changed.notify_all()
        if taken:
            session.error(-1, 326, CLIENT_ID_IN_USE)
            session.close()
            return
        session.send(MANAGED_ACCOUNTS, 1, self.account)
        session.send(NEXT_VALID_ID, 1, self.next_order_id)
        for code, text in FARMS_OK:
            session.error(-1, code, text)

    def _current_time(self, session: _Session, fields: list[str]) -> None:
        session.send(CURRENT_TIME, 1, int(time.time()))

    def _req_ids(self, session: _Session, fields: list[str]) -> None:
        session.send(NEXT_VALID_ID, 1, self.next_order_id)

    def _req_managed_accounts(self, session: _Session, fields: list[str]) -> None:
        session.send(MANAGED_ACCOUNTS, 1, self.account)

    # --- the market ---------------------------------------------------------------------------
    def step(self, count: int = 1) -> int:
        """Replay the bars of the next ``count`` time stamps; return how many were replayed.

        Resting orders are matched on each bar first, then subscribers get its prices, its
        real-time bar and, for ``keepUpToDate`` history requests, the update; then the next
        instrument's bar of the same time stamp, as in a backtest.
        """
        done = 0
        for _ in range(count):
            # One lock for the replay and what it sends: a subscription made meanwhile gets
            # either this step's messages or the snapshot taken when it was made, never both.
            with self.market.lock:
                bars, quotes = self.market.step(self._send_quotes, self._send_bar)
                if not bars and not quotes:
                    break
                done += 1
                self.accounts.on_time()
        return done

    def _send_quotes(self, quotes: list[Quote]) -> None:
        for quote in quotes:
            self._send_ticks(quote.instrument, trades=False)
            self._market_data.on_quote(quote)

    def _send_bar(self, bar: Bar) -> None:
        # right after its instrument's orders were matched on it, before the next instrument's
        self._send_ticks(bar.instrument, trades=True)
        self._send_bar_updates(bar)
        self._market_data.on_bar(bar)

    def play(self, interval: float) -> None:
        """Replay in the background, one time stamp every ``interval`` seconds, to the end.

        Use the bars' own spacing for real time, less to accelerate; :meth:`pause` stops.
        An error in the replay stops it, is logged and is kept in :attr:`replay_error`.

        Raises:
            ConfigError: if the interval is not positive.
        """
        if not interval > 0:
            raise ConfigError(f"the replay interval must be positive, got {interval!r}")
        self.pause()
        self.replay_error = None
        self._playing.set()

        def run() -> None:
            try:
                while self._playing.is_set() and not self.market.finished:
                    self.step()
                    self._playing.wait(0)  # let pause() through
                    time.sleep(interval)
            except Exception as exc:  # kept for the test to see, never lost silently
                log.exception("fake TWS: the replay stopped at an error")
                self.replay_error = exc
            finally:
                self._playing.clear()

        self._player = threading.Thread(target=run, name="faketws-replay", daemon=True)
        self._player.start()

    def burst(
        self,
        instrument: Instrument,
        bids: Sequence[float],
        asks: Sequence[float],
        *,
        rate: float | None = None,
        size: int = 100,
    ) -> float:
        """Send quotes of ``instrument`` to its subscribers faster than :meth:`step` can.

        Each quote is a bid and an ask price message (with ``size``), encoded before the
        clock starts and written in batches of a millisecond's worth: a load test's
        burst. They are not recorded (see :meth:`messages`) and do not move the market.

        Args:
            instrument: Whose quote subscribers get them.
            bids: The bid prices, one per quote.
            asks: The ask prices, as many.
            rate: Messages per second (two per quote), or None for as fast as the
                sockets take them.
            size: The size of every bid and ask.

        Returns:
            The seconds the sending took.

        Raises:
            ConfigError: if ``bids`` and ``asks`` differ in length or ``rate`` is not a
                positive number.
        """
        if len(bids) != len(asks):
            raise ConfigError(f"burst: {len(bids)} bids but {len(asks)} asks; give one each")
        if rate is not None and not (isinstance(rate, int | float) and rate > 0):
            raise ConfigError(f"burst: rate must be a positive number of messages/s, not {rate!r}")
        targets = [
            (session, req_id)
            for (_, req_id), (session, inst) in list(self._subscriptions.items())
            if inst == instrument and not session.closed.is_set()
        ]
        per_batch = max(1, int(rate / 2000)) if rate else 500  # quotes per write
        pairs = list(zip(bids, asks, strict=True))
        batches: list[list[bytes]] = []
        for _, req_id in targets:
            one = [
                b"".join(
                    frame(encode_fields(m.tick_price(req_id, tick, price, size)))
                    for bid, ask in pairs[i : i + per_batch]
                    for tick, price in ((m.TICK_BID, bid), (m.TICK_ASK, ask))
                )
                for i in range(0, len(pairs), per_batch)
            ]
            batches.append(one)
        started = time.monotonic()
        for number in range(len(batches[0]) if batches else 0):
            for (session, _), data in zip(targets, batches, strict=True):
                session.send_frames(data[number])
            if rate:
                ahead = (number + 1) * per_batch * 2 / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        return time.monotonic() - started

    def pause(self, timeout: float = 5.0) -> None:
        """Stop a replay started by :meth:`play` (waits at most ``timeout`` seconds)."""
        self._playing.clear()
        if self._player is not None:
            self._player.join(timeout)
            self._player = None

    @classmethod
    def from_sample(cls, symbols: Sequence[str] | None = None, **kwargs: object) -> FakeTWS:
        """A fake TWS replaying the shipped sample data (daily bars of fictional stocks)."""
        from ibkrfw.data.sample import load_sample, sample_instruments

        frame = load_sample()
        data = {
            inst: frame[frame["symbol"] == symbol].set_index("timestamp")
            for symbol, inst in sample_instruments(symbols).items()
        }
        return cls(data=data, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_store(
        cls,
        store: BarStore,
        instruments: Sequence[Instrument | str],
        bar_size: str,
        *,
        start: object = None,
        end: object = None,
        **kwargs: object,
    ) -> FakeTWS:
        """A fake TWS replaying bars from a :class:`~ibkrfw.data.BarStore`."""
        data = {}
        for item in instruments:
            inst = item if isinstance(item, Instrument) else store.instrument(item)
            data[inst] = store.read(inst, bar_size, start, end)
        return cls(data=data, **kwargs)  # type: ignore[arg-type]

    def _send_bar_updates(self, bar: Bar) -> None:
        inst = bar.instrument
        volume = int(bar.volume) if bar.volume == bar.volume else 0
        changes, self._corrupt = self._corrupt, {}
        o, h, lo, c = (
            changes.get(name, value)
            for name, value in zip(("open", "high", "low", "close"), bar[2:6], strict=True)
        )
        for (_, req_id), (session, wanted) in list(self._realtime.items()):
            if wanted == inst and not session.closed.is_set():
                session.send(*m.realtime_bar(
                    req_id, bar.ts_ns // 1_000_000_000, o, h, lo, c, volume,
                ))  # fmt: skip
        for (_, req_id), (session, wanted, style) in list(self._history_updates.items()):
            if wanted == inst and not session.closed.is_set():
                date = _bar_date(bar.ts_ns, inst, *style)  # as the request's bars had it
                session.send(*m.historical_update(
                    req_id, date, bar.open, bar.high, bar.low, bar.close, volume
                ))  # fmt: skip

    def _req_history(self, session: _Session, fields: list[str]) -> None:
        with self.market.lock:  # the history and its updates meet exactly (see step())
            self._answer_history(session, fields)

    def _answer_history(self, session: _Session, fields: list[str]) -> None:
        req_id = int(fields[1])
        if self._pacing_left > 0:
            self._pacing_left -= 1
            session.error(req_id, 162, PACING_TEXT)
            return
        inst = self._contract_of(session, req_id, fields, 2)
        if inst is None or session.client_id is None:
            return
        try:
            bars = self._history(inst, end=fields[15], size=fields[16], duration=fields[17])
        except ValueError as exc:
            session.error(req_id, 321, f"Error validating request:-'{fields[16]}' : cause - {exc}")
            return
        style = (fields[20], fields[16].strip().endswith(_DAILY_SIZES))
        items: list[object] = []
        for ts, o, h, lo, c, v in bars:
            items += m.historical_bar(_bar_date(ts, inst, *style), o, h, lo, c, v)
        now = dt.datetime.fromtimestamp(self.market.clock.now_ns() / 1e9, tz=dt.UTC)
        first = bars[0][0] if bars else self.market.clock.now_ns()
        start = dt.datetime.fromtimestamp(first / 1e9, tz=dt.UTC)
        if fields[21] == "1":  # keepUpToDate: registered first, so no replayed bar is missed
            self._history_updates[(session.client_id, req_id)] = (session, inst, style)
        session.send(
            17, req_id, f"{start:%Y%m%d %H:%M:%S}", f"{now:%Y%m%d %H:%M:%S}", len(bars), *items
        )

    def _history(
        self, inst: Instrument, *, end: str, size: str, duration: str
    ) -> list[tuple[int, float, float, float, float, int]]:
        """The replayed bars of ``inst`` in ``[end - duration, end)``, at the data's own size."""
        from ibkrfw.data.barsize import bar_size_ns

        arrays = self.market.arrays[inst]
        upto = self.market.position
        now = self.market.clock.now_ns() if upto >= 0 else -(2**62)
        stop = parse_ib_time(end, inst.timezone) if end.strip() else now + 1
        stop = min(stop, now + 1)  # history never reaches into the bars not replayed yet
        count, unit = duration.split() if duration.strip() else ("1", "D")
        if unit not in _DURATION_UNITS or not count.isdigit():
            raise ValueError(f"durationStr {duration!r} is not understood")
        begin = stop - int(count) * _DURATION_UNITS[unit] * 1_000_000_000
        ts = arrays.ts_ns
        if len(ts) > 1:
            spacing = int(np.median(np.diff(ts)))
            wanted = bar_size_ns(size)  # IB's spellings are understood
            if wanted != spacing and not (wanted == 86_400 * 10**9 and spacing >= wanted):
                raise ValueError(
                    f"the fake TWS serves its bars at their own size only ({spacing // 10**9} s)"
                )
        mask = (ts >= begin) & (ts < stop)
        return [
            (int(t), float(o), float(h), float(lo), float(c), int(v) if v == v else 0)
            for t, o, h, lo, c, v in zip(
                ts[mask], arrays.open[mask], arrays.high[mask], arrays.low[mask],
                arrays.close[mask], arrays.volume[mask], strict=True,
            )
        ]  # fmt: skip

    def _cancel_history(self, session: _Session, fields: list[str]) -> None:
        if session.client_id is not None:
            self._history_updates.pop((session.client_id, int(fields[2])), None)

    def _req_realtime(self, session: _Session, fields: list[str]) -> None:
        req_id = int(fields[2])
        inst = self._contract_of(session, req_id, fields, 3)
        if inst is not None and session.client_id is not None:
            self._realtime[(session.client_id, req_id)] = (session, inst)

    def _cancel_realtime(self, session: _Session, fields: list[str]) -> None:
        if session.client_id is not None:
            self._realtime.pop((session.client_id, int(fields[2])), None)

    def _session_of(self, client_id: int) -> _Session | None:
        return next((s for s in self._connected() if s.client_id == client_id), None)

    def _contract_of(
        self, session: _Session, req_id: int, fields: list[str], at: int
    ) -> Instrument | None:
        """The instrument a request's contract block (conId first, at ``at``) names."""
        try:
            con_id = int(fields[at] or 0)
        except ValueError:
            con_id = 0
        inst = self.market.find(
            con_id, fields[at + 1], fields[at + 2], fields[at + 9], *fields[at + 3 : at + 6]
        )
        if inst is None:
            session.error(req_id, 200, "No security definition has been found for the request")
        return inst

    def _contract_details(self, session: _Session, fields: list[str]) -> None:
        req_id = int(fields[2])
        inst = self._contract_of(session, req_id, fields, 3)
        if inst is None:
            return
        found = [inst]
        if inst.asset_class.value == "FUT" and not int(fields[3] or 0):
            found = self._future_months(fields)  # no con id: TWS lists every month that fits
        for each in found:
            session.send(*m.contract_details(req_id, each, self.market.con_ids[each]))
        session.send(52, 1, req_id)  # contractDetailsEnd

    def _future_months(self, fields: list[str]) -> list[Instrument]:
        """The futures a contract-details request without a con id matches (fields from 3)."""
        return self.market.find_all(0, fields[4], fields[5], fields[12], fields[6])

    def _req_mkt_data(self, session: _Session, fields: list[str]) -> None:
        req_id = int(fields[2])
        inst = self._contract_of(session, req_id, fields, 3)
        if inst is None or session.client_id is None:
            return
        if "1" in fields[-3:-1]:  # snapshot or regulatory snapshot: what there is, then end
            self._snapshot(session, req_id, inst)
            return
        with self.market.lock:  # see step()
            self._subscriptions[(session.client_id, req_id)] = (session, inst)
            session.send(58, 1, req_id, 1)  # marketDataType: live
            session.send(*m.tick_generic(req_id, TICK_HALTED, 0.0))  # not halted
            if self.market.last_quote.get(inst) is not None:
                self._ticks(session, req_id, inst, trades=False)
            if self.market.last.get(inst) is not None:
                self._ticks(session, req_id, inst, trades=True)

    def _snapshot(self, session: _Session, req_id: int, inst: Instrument) -> None:
        """Answer a snapshot request as TWS does: the current ticks, then tickSnapshotEnd."""
        with self.market.lock:
            session.send(58, 1, req_id, 1)  # marketDataType: live
            if self.market.last_quote.get(inst) is not None:
                self._ticks(session, req_id, inst, trades=False)
            if self.market.last.get(inst) is not None:
                self._ticks(session, req_id, inst, trades=True)
        session.send(TICK_SNAPSHOT_END, 1, req_id)

    def _cancel_mkt_data(self, session: _Session, fields: list[str]) -> None:
        if session.client_id is not None:
            self._subscriptions.pop((session.client_id, int(fields[2])), None)

    def _send_ticks(self, inst: Instrument, *, trades: bool) -> None:
        for (_, req_id), (session, subscribed) in list(self._subscriptions.items()):
            if subscribed == inst and not session.closed.is_set():
                self._ticks(session, req_id, inst, trades=trades)

    def _ticks(self, session: _Session, req_id: int, inst: Instrument, *, trades: bool) -> None:
        """Send the last quote (``trades=False``) or the last bar's trade prices."""
        if not trades:
            quote = self.market.last_quote[inst]
            bid_size = int(quote.bid_size) if quote.bid_size == quote.bid_size else 0
            ask_size = int(quote.ask_size) if quote.ask_size == quote.ask_size else 0
            session.send(*m.tick_price(req_id, m.TICK_BID, quote.bid, bid_size))
            session.send(*m.tick_price(req_id, m.TICK_ASK, quote.ask, ask_size))
            return
        bar = self.market.last[inst]
        volume = int(bar.volume) if bar.volume == bar.volume else 0
        if inst not in self.market.quotes:  # no quotes: one tick either side of the close
            tick = float(inst.tick_size)
            session.send(*m.tick_price(req_id, m.TICK_BID, round(bar.close - tick, 10), 100))
            session.send(*m.tick_price(req_id, m.TICK_ASK, round(bar.close + tick, 10), 100))
        session.send(*m.tick_price(req_id, m.TICK_LAST, bar.close, volume))
        session.send(*m.tick_size(req_id, m.TICK_VOLUME, volume))
        session.send(*m.tick_string(req_id, TICK_LAST_TIMESTAMP, str(bar.ts_ns // 1_000_000_000)))
        if isinstance(inst, Option):  # TWS's option model: volatility and greeks of each price
            known = self.market.last_quote.get(inst)
            tick = float(inst.tick_size)
            bid, ask = (
                (float(known.bid), float(known.ask))
                if known is not None
                else (bar.close - tick, bar.close + tick)
            )
            for message in self._market_data.option_computations(
                req_id, inst, bid, ask, float(bar.close)
            ):
                session.send(*message)

    # --- orders -----------------------------------------------------------------------------------
    def _place_order(self, session: _Session, fields: list[str]) -> None:
        client_id = session.client_id
        assert client_id is not None  # _dispatch lets nothing else through
        order_id = int(fields[1])
        if len(fields) < 55:
            session.error(
                order_id, 320, f"Error reading request: placeOrder has {len(fields)} fields"
            )
            return
        if fields[53] == "1":  # the 9.81 client's defaults, refused by current TWS
            session.error(order_id, 10268, "The 'EtradeOnly' order attribute is not supported.")
            return
        if fields[54] == "1":
            session.error(order_id, 10269, "The 'firmQuoteOnly' order attribute is not supported.")
            return
        inst = self._contract_of(session, order_id, fields, 2)
        if inst is None:
            return
        try:
            request = self._request(inst, fields)
        except (OrderError, InvalidOperation, ValueError, IndexError) as exc:
            session.error(order_id, 201, f"Order rejected - reason:{exc}")
            return
        problem = check_request(request)
        if problem is not None:
            session.error(order_id, 201, f"Order rejected - reason:{problem}")
            return
        self.next_order_id = max(self.next_order_id, order_id + 1)
        what_if = _what_if_field(fields)
        if len(fields) > what_if and fields[what_if] == "1":
            self._what_if(session, order_id, inst, request)
            return
        known = self._order_ids.get((client_id, order_id))
        if known is not None:
            order = self.market.orders.get(known)
            if order is None or order.status.is_terminal:
                session.error(order_id, 103, "Duplicate order id")
                return
            problem = check_modification(order, request)  # the engine's rules, IB's rules
            if problem is not None:
                session.error(order_id, 201, f"Order rejected - reason:{problem}")
                return
            self.market.modify(known, request)
            return
        refusal = self._refusal(request)
        if refusal is not None:
            session.error(order_id, 201, f"Order rejected - reason:{refusal}")
            return
        if self._rejections:
            code, text = self._rejections.pop(0)
            session.error(order_id, code, text)
            return
        if self._lose_left > 0 and self._lose_after > 0:
            self._lose_after -= 1
        elif self._lose_left > 0:
            self._lose_left -= 1
            log.info("fake TWS: order %d of client %d lost on the wire", order_id, client_id)
            session.close()
            return
        parent = int(fields[28] or 0)
        if parent:
            parent_market = self._order_ids.get((client_id, parent))
            if parent_market is None:
                session.error(order_id, 201, f"Order rejected - reason:parent {parent} unknown")
                return
            request = attrs.evolve(request, parent_id=parent_market)
        transmit = fields[27] != "0"
        root = (client_id, parent or order_id)
        with self.market.lock:
            order = self.market.submit_later(request)
            self._order_ids[(client_id, order_id)] = order.order_id
            self._owners[order.order_id] = (client_id, order_id)
            # An order sent with transmit off waits in TWS until an order of its group (its
            # parent and the parent's children) arrives with transmit on; then all go.
            group = self._untransmitted.setdefault(root, [])
            group.append(order)
            if transmit:
                del self._untransmitted[root]
                for held in group:
                    self.market.send(held)

    def _what_if(
        self, session: _Session, order_id: int, inst: Instrument, request: OrderRequest
    ) -> None:
        """Answer a what-if order as TWS does: one openOrder with the estimates, nothing else.

        The order is never kept, worked or filled. The margins are the fake's (its rates of
        each position's value, maintenance half the initial), the commission its model's.
        """
        assert session.client_id is not None
        with self.market.lock:
            pf = self.market.portfolio
            equity = pf.equity
            before = self._initial_margin()
            price = request.limit_price
            unit = float(price) if price is not None else pf.price(inst)
            if unit == unit:  # priced: the order's value and commission can be estimated
                held = pf.quantity(inst)
                after_qty = held + request.side.sign * request.quantity
                value = unit * float(inst.multiplier) * self.margin_rates[inst.asset_class]
                change = (abs(float(after_qty)) - abs(float(held))) * value
                ts = self.market.clock.now_ns()
                fee = float(
                    self.market.broker.commission_model.commission(
                        inst, request.side, request.quantity,
                        inst.round_price(float_decimal(unit)), ts, NOTHING_YET,
                    )
                )  # fmt: skip
                after = before + change
                amounts = [before, before / 2, equity, change, change / 2, -fee]
                amounts += [after, after / 2, equity - fee]
                margins = tuple(f"{x:.2f}" for x in amounts)
                estimate = m.WhatIf(margins, (fee, fee, fee, inst.currency))
            else:
                estimate = m.WhatIf(
                    ("",) * 9,
                    (UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, ""),
                    f"no price of {inst.id} yet to estimate the order from",
                )
        session.send(*m.open_order(
            order_id, inst, self.market.con_ids[inst], request, client_id=session.client_id,
            perm_id=0, account=self.account, status="PreSubmitted", what_if=estimate,
        ))  # fmt: skip

    def _refusal(self, request: OrderRequest) -> str | None:
        """Why TWS would refuse a new order for the account's buying power (None: it would not).

        A margin account's refusal is worded as TWS words it; a cash account's gives the
        amounts of :class:`~ibkrfw.risk.BuyingPower`'s reason. The fake's account holds one
        currency and converts none, so an order priced in another is refused too (TWS would
        convert it): its fill could not be booked.
        """
        with self.market.lock:
            pf = self.market.portfolio
            inst = request.instrument
            if inst.currency != pf.base_currency:
                return (
                    f"{inst.id} trades in {inst.currency}, and the fake TWS's account holds "
                    f"{pf.base_currency} only, with no exchange rates; trade instruments priced "
                    f"in {pf.base_currency}"
                )
            decision = self._buying_power.check(request, pf, self.market.clock.now_ns())
            if decision.approved:
                return None
            if self.account_kind == "cash":
                return f"YOUR ORDER IS NOT ACCEPTED. {decision.reason}"
            _, after = self._buying_power.initial_margin(request, pf)
            equity = pf.equity
        currency = pf.base_currency
        return (
            "YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED POSITION YOUR EQUITY WITH "
            f"LOAN VALUE [{equity:.2f} {currency}] MUST EXCEED THE INITIAL MARGIN "
            f"[{after:.2f} {currency}]"
        )

    def _initial_margin(self) -> float:
        """The initial margin the positions need at their last prices (under the market lock)."""
        pf = self.market.portfolio
        return sum(
            (
                abs(pf.value(p)) * self.margin_rates[inst.asset_class]
                for inst, p in pf.positions.items()
            ),
            0.0,
        )

    def _request(self, inst: Instrument, fields: list[str]) -> OrderRequest:
        """The order a placeOrder message asks for (field positions of v157).

        An algo (algoStrategy and algoParams) is read and kept on the request, so openOrder
        echoes it; the fake's market works it as :class:`~ibkrfw.sim.SimBroker` simulates it.
        """
        try:
            kind = OrderType(fields[18])  # the model's values are IB's order type codes
        except ValueError:
            raise ValueError(f"the fake TWS does not simulate {fields[18]!r} orders") from None
        side = Side.BUY if fields[16] == "BUY" else Side.SELL
        tif = TimeInForce(fields[21] or "DAY")
        good_till = parse_ib_time(fields[38], inst.timezone) if tif is TimeInForce.GTD else None

        def price(text: str) -> Decimal | None:
            return None if is_unset(text) else Decimal(text)

        limit, aux = price(fields[19]), price(fields[20])
        limited = kind in (OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.LIMIT_ON_CLOSE)
        stop = aux if kind in (OrderType.STOP, OrderType.STOP_LIMIT) else None
        trail_amount = trail_percent = None
        if kind is OrderType.TRAILING_STOP:  # auxPrice: the amount; or trailingPercent
            trail_amount = aux
            trail_percent = price(fields[70]) if trail_amount is None else None
            stop = price(fields[69]) or self._initial_trail_stop(
                inst, side, trail_amount, trail_percent
            )
        strategy, params = _algo_fields(fields)
        return OrderRequest(
            inst,
            side,
            Decimal(fields[17]),
            kind,
            algo=algo_from_params(strategy, params),
            limit_price=limit if limited else None,
            stop_price=stop,
            tif=tif,
            good_till_ns=good_till,
            tag=fields[26],
            trail_amount=trail_amount,
            trail_percent=trail_percent,
            oca_group=fields[22],
        )

    def _initial_trail_stop(
        self, inst: Instrument, side: Side, amount: Decimal | None, percent: Decimal | None
    ) -> Decimal:
        """Where TWS starts a trailing stop sent without trailStopPrice: off the last price."""
        bar = self.market.last.get(inst)
        if bar is None:
            raise ValueError("no last price yet to start the trailing stop from")
        last = float_decimal(bar.close)
        gap = amount if amount is not None else last * (percent or Decimal(0)) / 100
        rounding = "ROUND_CEILING" if side is Side.BUY else "ROUND_FLOOR"
        return inst.round_price(last + gap if side is Side.BUY else last - gap, rounding)

    def _cancel_order(self, session: _Session, fields: list[str]) -> None:
        assert session.client_id is not None
        order_id = int(fields[2])
        known = self._order_ids.get((session.client_id, order_id))
        if known is None:
            session.error(order_id, 135, f"Can't find order with id ={order_id}")
            return
        self._cancel_known(known)

    def _global_cancel(self, session: _Session, fields: list[str]) -> None:
        """reqGlobalCancel: cancel every working order of every client, as TWS does."""
        with self.market.lock:
            for market_id in list(self._owners):
                # checked one by one: cancelling a parent may have cancelled its children
                order = self.market.orders.get(market_id)
                if order is not None and not order.status.is_terminal:
                    self._cancel_known(market_id)

    def _cancel_known(self, known: int) -> None:
        """Cancel the market's order ``known``; each client hears of its own orders."""
        with self.market.lock:
            for root, group in list(self._untransmitted.items()):
                held = next((o for o in group if o.order_id == known), None)
                if held is None:
                    continue
                # never transmitted: TWS deletes it (the rest of its group waits on)
                group.remove(held)
                if not group:
                    del self._untransmitted[root]
                event = OrderCancelled(
                    ts_ns=self.market.clock.now_ns() if self.market.position >= 0 else 0,
                    order_id=known,
                    reason="cancelled before it was transmitted",
                )
                self.market.orders.apply(event)
                self._order_event(event)
                return
        self.market.cancel(known)

    def _order_event(self, event: OrderEvent) -> None:
        """Translate the simulator's events into what TWS sends (runs under the market lock)."""
        owner = self._owners.get(event.order_id)
        order = self.market.orders.get(event.order_id)
        if owner is None or order is None:
            return
        client_id, order_id = owner
        session = self._session_of(client_id)
        inst = order.instrument
        con_id = self.market.con_ids[inst]
        perm_id = event.order_id
        filled = order.filled_quantity
        remaining = order.quantity - filled
        avg = float(order.avg_fill_price or 0)

        def status(text: str, last: float = 0.0) -> list[object]:
            return m.order_status(
                order_id, text, filled, remaining, avg, perm_id, 0, last, client_id
            )

        def open_order(text: str) -> list[object]:
            return m.open_order(
                order_id, inst, con_id, order.request, client_id=client_id, perm_id=perm_id,
                account=self.account, status=text,
            )  # fmt: skip

        out: list[list[object]] = []
        if isinstance(event, OrderAccepted | OrderModified):
            out += [open_order("Submitted"), status("Submitted")]
        elif isinstance(event, OrderFilled):
            fill = event.fill
            exec_id = f"0000fa7e.{perm_id:08x}.{len(self._executions) + 1:02d}.01"
            # when it happened on the fake's clock, not the bar's time, in TWS's format
            now_ns = fill.ts_ns if self.clock == "replay" else self._now_ns()
            when = time.strftime("%Y%m%d %H:%M:%S UTC", time.gmtime(now_ns / 1e9))
            details = m.exec_details(
                -1, order_id, inst, con_id, exec_id=exec_id, time_text=when,
                account=self.account, side=fill.side, shares=fill.quantity, price=fill.price,
                perm_id=perm_id, client_id=client_id, cum_qty=filled, avg_price=avg,
                order_ref=order.request.tag or "",
            )  # fmt: skip
            report: list[object] | None = m.commission_report(
                exec_id, fill.commission, inst.currency, None
            )
            if self._commissions_withheld > 0:
                self._commissions_withheld -= 1
                report = None
            self._executions.append((client_id, details, report))
            done = remaining == 0
            halves = [details] if report is None else [details, report]
            out += halves
            if self._duplicates_left > 0:
                self._duplicates_left -= 1
                out += halves
            out.append(status("Filled" if done else "Submitted", float(fill.price)))
            if done:
                out.append(open_order("Filled"))
        elif isinstance(event, OrderCancelled | OrderExpired):
            reason = getattr(event, "reason", "") or "expired"
            out += [[4, 2, order_id, 202, f"Order Canceled - reason:{reason}"], status("Cancelled")]
        elif isinstance(event, OrderRejected):
            out += [
                [4, 2, order_id, event.code, f"Order rejected - reason:{event.reason}"],
                status("Inactive"),
            ]
        elif isinstance(event, OrderCancelRejected):
            out.append(
                [4, 2, order_id, 161, "Cancel attempted when order is not in a cancellable state."]
            )
        elif isinstance(event, OrderModifyRejected):
            out.append([4, 2, order_id, 201, f"Order rejected - reason:{event.reason}"])
        if order.status.is_terminal and event.order_id not in self._completed_at:
            self._completed_at[event.order_id] = (
                event.ts_ns if self.clock == "replay" else self._now_ns()
            )
        if session is not None:
            with self._lock:
                held = self._holding
                if held:
                    self._held.extend((session, message) for message in out)
            if not held:
                for message in out:
                    session.send(*message)
        if isinstance(event, OrderFilled):  # every subscriber hears, the order's client or not
            self._send_position(inst)
            self.accounts.on_fill(inst)

    def _send_position(self, inst: Instrument) -> None:
        """Send an instrument's position to every reqPositions subscriber, as TWS does.

        TWS keeps a ``reqPositions`` subscription open until ``cancelPositions`` and sends
        each change: a closed position as quantity 0.
        """
        pos = self.market.portfolio.positions.get(inst)
        quantity = pos.quantity if pos is not None else Decimal(0)
        avg_cost = float(pos.avg_price * inst.multiplier) if pos is not None else 0.0
        message = m.position(self.account, inst, self.market.con_ids[inst], quantity, avg_cost)
        with self._lock:
            subscribers = list(self._position_subscribers)
        for session in subscribers:
            if session.closed.is_set():
                with self._lock:
                    self._position_subscribers.discard(session)
            else:
                session.send(*message)

    def _open_orders(self, session: _Session, fields: list[str]) -> None:
        every = int(fields[0]) == REQ_ALL_OPEN_ORDERS
        for market_id, (client_id, order_id) in list(self._owners.items()):
            order = self.market.orders.get(market_id)
            if order is None or order.status.is_terminal:
                continue
            if not every and client_id != session.client_id:
                continue
            inst = order.instrument
            session.send(*m.open_order(
                order_id, inst, self.market.con_ids[inst], order.request, client_id=client_id,
                perm_id=market_id, account=self.account, status="Submitted",
            ))  # fmt: skip
        session.send(53, 1)  # openOrderEnd

    def _req_executions(self, session: _Session, fields: list[str]) -> None:
        req_id = int(fields[2])
        try:
            wanted = _execution_filter(fields[3:10])
        except ValueError as exc:
            session.error(req_id, 321, f"Error validating request:-'ExecutionFilter' : {exc}")
            return
        for client_id, details, report in list(self._executions):
            if client_id == session.client_id and wanted(details):
                session.send(details[0], req_id, *details[2:])
                if report is not None:
                    session.send(*report)
        session.send(55, 1, req_id)  # execDetailsEnd

    def _req_positions(self, session: _Session, fields: list[str]) -> None:
        with self.market.lock:  # subscribed and answered at once: no change is missed
            with self._lock:
                self._position_subscribers.add(session)
            held = list(self.market.portfolio.positions.values())
        for pos in held:
            inst = pos.instrument
            avg_cost = float(pos.avg_price * inst.multiplier)
            session.send(
                *m.position(self.account, inst, self.market.con_ids[inst], pos.quantity, avg_cost)
            )
        session.send(62, 1)  # positionEnd

    def _cancel_positions(self, session: _Session, fields: list[str]) -> None:
        with self._lock:
            self._position_subscribers.discard(session)

    def _completed_orders(self, session: _Session, fields: list[str]) -> None:
        for market_id in list(self._owners):
            order = self.market.orders.get(market_id)
            if order is None or not order.status.is_terminal:
                continue
            inst = order.instrument
            status = "Filled" if order.filled_quantity >= order.quantity else "Cancelled"
            ended = self._completed_at.get(market_id, order.updated_ns)
            when = time.strftime("%Y%m%d %H:%M:%S UTC", time.gmtime(ended / 1e9))
            session.send(*m.completed_order(
                inst, self.market.con_ids[inst], order.request, perm_id=market_id,
                account=self.account, status=status, filled=order.filled_quantity,
                completed_time=when, completed_status=order.reason or status,
            ))  # fmt: skip
        session.send(102)  # completedOrdersEnd

    def _account_values(self) -> dict[str, tuple[str, str]]:
        with self.market.lock:
            pf = self.market.portfolio
            equity, cash, gross = pf.equity, float(pf.cash), pf.gross_exposure
            initial = self._initial_margin()
        maintenance = initial / 2
        available = equity - initial
        return {
            "AccountType": ("INDIVIDUAL", ""),
            "NetLiquidation": (f"{equity:.2f}", "USD"),
            "TotalCashValue": (f"{cash:.2f}", "USD"),
            "SettledCash": (f"{cash:.2f}", "USD"),
            "GrossPositionValue": (f"{gross:.2f}", "USD"),
            "EquityWithLoanValue": (f"{equity:.2f}", "USD"),
            "InitMarginReq": (f"{initial:.2f}", "USD"),
            "MaintMarginReq": (f"{maintenance:.2f}", "USD"),
            "AvailableFunds": (f"{available:.2f}", "USD"),
            "ExcessLiquidity": (f"{equity - maintenance:.2f}", "USD"),
            "BuyingPower": (f"{cash if self.account_kind == 'cash' else available * 2:.2f}", "USD"),
        }

    def __repr__(self) -> str:
        return f"FakeTWS({self.host}:{self._port}, clients={self.client_ids})"


def _limit_send_time(sock: socket.socket, seconds: float) -> None:
    """Make a blocking send on ``sock`` fail after ``seconds`` (SO_SNDTIMEO) instead of waiting."""
    whole = max(int(seconds), 0)
    if sys.platform == "win32":  # a DWORD of milliseconds
        value = struct.pack("I", max(int(seconds * 1000), 1))
    else:  # a struct timeval
        value = struct.pack("ll", whole, max(int((seconds - whole) * 1e6), 0 if whole else 1))
    with contextlib.suppress(OSError):  # not every system has it: then sends just wait
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)


def _bar_date(ts_ns: int, inst: Instrument, format_date: str, daily: bool) -> str:
    """A bar's date as TWS writes it: epoch seconds (formatDate 2), else local time text.

    Daily and longer bars are ``yyyymmdd``; shorter ones ``yyyymmdd hh:mm:ss`` and the zone.
    """
    if format_date == "2":
        return str(ts_ns // 1_000_000_000)
    local = dt.datetime.fromtimestamp(ts_ns / 1e9, tz=ZoneInfo(inst.timezone))
    return local.strftime("%Y%m%d") if daily else f"{local:%Y%m%d %H:%M:%S} {inst.timezone}"


def _algo_fields(fields: Sequence[str]) -> tuple[str, list[tuple[str, str]]]:
    """Return placeOrder's algoStrategy and its (tag, value) parameters (v157 positions)."""
    strategy = fields[ALGO_FIELD] if len(fields) > ALGO_FIELD else ""
    if not strategy:
        return "", []
    count = int(fields[ALGO_FIELD + 1] or 0)
    at = ALGO_FIELD + 2
    return strategy, [(fields[at + 2 * i], fields[at + 2 * i + 1]) for i in range(count)]


def _what_if_field(fields: Sequence[str]) -> int:
    """Return where placeOrder's whatIf flag is: an algo adds its parameters' count and pairs."""
    if len(fields) <= ALGO_FIELD or not fields[ALGO_FIELD]:
        return WHAT_IF_FIELD
    return WHAT_IF_FIELD + 1 + 2 * int(fields[ALGO_FIELD + 1] or 0)


def _execution_filter(fields: list[str]) -> Callable[[list[object]], bool]:
    """The test of a reqExecutions filter on execDetails fields, as TWS applies it.

    The filter's fields are clientId, acctCode, time, symbol, secType, exchange and side. An
    empty or zero criterion matches everything, text matches regardless of case, and ``time``
    keeps the executions at or after it (IB's ``yyyymmdd hh:mm:ss [zone]``, UTC without a
    zone, or ``yyyymmdd-hh:mm:ss`` in UTC).

    Raises:
        ValueError: if the filter's client id or time cannot be read.
    """
    fields = [*fields, *[""] * (7 - len(fields))]
    client_text, account, since_text, symbol, sec_type, exchange, side = fields[:7]
    try:
        client = int(client_text or 0)
    except ValueError:
        raise ValueError(f"clientId {client_text!r} is not a whole number") from None
    try:
        since = parse_ib_time(since_text) if since_text.strip() else None
    except ValueError:
        raise ValueError(
            f"time {since_text!r} is not a time: give yyyymmdd hh:mm:ss [zone] or "
            "yyyymmdd-hh:mm:ss (UTC)"
        ) from None
    texts = {4: symbol, 5: sec_type, 17: exchange, 16: account}  # execDetails positions
    side = {"BUY": "BOT", "SELL": "SLD"}.get(side.strip().upper(), side.strip().upper())

    def matches(details: list[object]) -> bool:
        if client and str(details[22]) != str(client):
            return False
        for at, text in texts.items():
            if text.strip() and str(details[at]).upper() != text.strip().upper():
                return False
        if side and str(details[18]) != side:
            return False
        return since is None or parse_ib_time(str(details[15])) >= since

    return matches
