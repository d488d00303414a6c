"""FakeTWS: a server on 127.0.0.1 that speaks the TWS socket protocol to unmodified clients."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Literal, final

import attrs

from ibkrfw.errors import ConfigError
from ibkrfw.testing.faketws.wire import (
    HANDSHAKE_PREFIX,
    SERVER_VERSION,
    FrameReader,
    WireError,
    encode_fields,
    frame,
    parse_version_range,
    split_fields,
)

__all__ = ["FakeTWS", "Recorded"]

log = logging.getLogger("ibkrfw.testing.faketws")

# Incoming (client -> server) message ids
START_API, REQ_CURRENT_TIME, REQ_IDS = 71, 49, 8
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
        at: When, as ``time.monotonic()``.
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
            try:
                self.sock.sendall(frame(payload))
            except OSError:
                self.close()
                return
        self.server._record("out", self.client_id, split_fields(payload))

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
            fields = split_fields(payload)
            self.server._record("in", self.client_id, fields)
            if fields:
                self.server._dispatch(self, fields)


@final
class FakeTWS:
    """A stand-in for TWS or IB Gateway that unmodified API clients connect to.

    It listens on 127.0.0.1 and speaks the real socket protocol at server version 157, the
    version every supported client accepts (ibapi 9.81 and 10.x, ib_async). Each connection
    is served by its own thread; every message in and out is recorded, so a test can assert
    what a client sent.

    Args:
        host: The address to listen on: 127.0.0.1 unless you mean otherwise.
        port: The port; 0 picks a free one (read it from :attr:`port` after :meth:`start`).
        account: The account id announced to clients (a paper-style ``DU`` id by default).
        next_order_id: The first order id announced by ``nextValidId``.

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
    ) -> None:
        if not account:
            raise ConfigError("the fake TWS needs an account id")
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
        self._handlers: dict[int, Callable[[_Session, list[str]], None]] = {
            START_API: self._start_api,
            REQ_CURRENT_TIME: self._current_time,
            REQ_IDS: self._req_ids,
        }

    # --- life cycle ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The port it listens on (known once started)."""
        return self._port

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
        log.info("fake TWS listening on %s:%d", self.host, self._port)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close every connection and stop listening (waits at most ``timeout`` seconds)."""
        self._stopping.set()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
            self._accept_thread = None
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
        self, direction: Literal["in", "out"], client_id: int | None, fields: Sequence[str]
    ) -> None:
        with self._lock:
            self._records.append(Recorded(direction, client_id, tuple(fields), time.monotonic()))
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
        """Return the recorded messages, oldest first, optionally filtered."""
        with self._lock:
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
            log.info("fake TWS: message %d is not supported yet; recorded only", msg_id)
            return
        handler(session, fields)

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

    def __repr__(self) -> str:
        return f"FakeTWS({self.host}:{self._port}, clients={self.client_ids})"
