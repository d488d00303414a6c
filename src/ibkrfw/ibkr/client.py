"""One API connection to TWS or IB Gateway, on its own threads, reconnecting by itself.

:class:`IBClient` owns the official ``ibapi`` client. Its callbacks arrive on ibapi's message
thread; they are normalised once here (9.81 and 10.x differ: ``error``'s arguments, ``Decimal``
sizes, the commission callback's name) and handed to the registered :class:`Listener` objects,
which only translate them into model events for the engine's queue. Everything sent goes through
:meth:`IBClient.send`, which keeps the outgoing rate under IB's 50 messages a second.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import queue
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any, final

from ibapi import comm
from ibapi.client import EClient
from ibapi.connection import Connection
from ibapi.decoder import Decoder
from ibapi.utils import BadMessage
from ibapi.wrapper import EWrapper

from ibkrfw.core.queue import set_arrival_ns
from ibkrfw.errors import BrokerError, ConfigError, RequestError
from ibkrfw.ibkr.config import IBKRConfig
from ibkrfw.ibkr.connection import (
    Backoff,
    ConnectionMonitor,
    ConnectionState,
    Transition,
)
from ibkrfw.ibkr.pacing import MessageRate
from ibkrfw.model._decimal import float_decimal

__all__ = ["REQUEST_ID_BASE", "IBClient", "Listener"]

log = logging.getLogger("ibkrfw.ibkr")

REQUEST_ID_BASE = 1_000_000_000
"""Request ids start above it, far from order ids (both share ``error``'s id field)."""

# Callbacks that answer one request, by request id: the row callback and its end marker.
_ROWS_BY_ID = {
    "contractDetails": "contractDetailsEnd",
    "historicalData": "historicalDataEnd",
    "accountSummary": "accountSummaryEnd",
    "execDetails": "execDetailsEnd",
    "symbolSamples": "symbolSamples",  # one message: the rows and the end at once
    "securityDefinitionOptionParameter": "securityDefinitionOptionParameterEnd",
}
_ENDS_BY_ID = {end: rows for rows, end in _ROWS_BY_ID.items()}
# Answers to requests without an id: only one of each may be pending at a time.
_ROWS_NO_ID = {
    "position": "positionEnd",
    "openOrder": "openOrderEnd",
    "completedOrder": "completedOrdersEnd",
}
_ENDS_NO_ID = {end: rows for rows, end in _ROWS_NO_ID.items()}


def _number(value: Any) -> Decimal:
    """One type for sizes and quantities: 9.81 sends float or int, 10.x Decimal."""
    if isinstance(value, Decimal):
        return value
    return float_decimal(value) if isinstance(value, float) else Decimal(value)


class Listener:
    """Receives a connection's callbacks; subclass and override what you need.

    Both methods are called on ibapi's message thread, so they must be quick and must not block:
    translate, put on a queue, return.
    """

    def on_message(self, name: str, args: tuple[Any, ...]) -> None:
        """Take one callback of ibapi's ``EWrapper``, by its name, with normalised arguments.

        ``error`` arrives as ``(req_id, code, text)`` for every client version; sizes and
        quantities are :class:`~decimal.Decimal`; ``commissionReport`` arrives as
        ``(exec_id, commission, currency)`` whichever of its two names the client uses.
        Market depth arrives as ``updateMktDepth`` ``(req_id, position, operation, side,
        price, size)`` and ``updateMktDepthL2`` ``(req_id, position, market_maker, operation,
        side, price, size, is_smart_depth)``, sizes as ``float`` (market data); after the
        last depth message waiting is handled, ``depthBurstEnd`` ``()`` says that what
        arrived together has all been delivered (IB sends a change of a book as several
        messages, so a book is checked only then).
        """

    def on_transition(self, transition: Transition) -> None:
        """Take a change of the connection's state and the actions it calls for."""


class _Pending:
    """Rows collected for one request until its end marker or an error."""

    __slots__ = ("done", "error", "rows")

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.done = threading.Event()
        self.error: RequestError | None = None


class _Wrapper(EWrapper):  # type: ignore[misc]
    """ibapi's callbacks for one connection attempt, normalised and passed to the client."""

    def __init__(self, client: IBClient, generation: int) -> None:
        EWrapper.__init__(self)
        self._client = client
        self._generation = generation
        self.depth_pending = False  # a depth message was delivered since the last burst end

    def _put(self, name: str, *args: Any) -> None:
        self._client._receive(self._generation, name, args)

    # ibapi's names and signatures follow; the arguments of 9.81 and 10.x are reconciled here.
    def error(self, reqId: int, *args: Any) -> None:  # noqa: N803
        # 9.81: (code, text); 10.x: (errorTime, code, text, advancedOrderRejectJson)
        if len(args) >= 3 and isinstance(args[2], str):
            code, text = args[1], args[2]
        else:
            code, text = args[0], args[1]
        self._put("error", int(reqId), int(code), str(text))

    def connectionClosed(self) -> None:  # noqa: N802
        self._put("connectionClosed")

    def nextValidId(self, orderId: int) -> None:  # noqa: N802, N803
        self._put("nextValidId", int(orderId))

    def managedAccounts(self, accountsList: str) -> None:  # noqa: N802, N803
        self._put("managedAccounts", accountsList)

    def currentTime(self, time: int) -> None:  # noqa: N802
        self._put("currentTime", int(time))

    def contractDetails(self, reqId: int, contractDetails: Any) -> None:  # noqa: N802, N803
        self._put("contractDetails", reqId, contractDetails)

    def contractDetailsEnd(self, reqId: int) -> None:  # noqa: N802, N803
        self._put("contractDetailsEnd", reqId)

    def marketDataType(self, reqId: int, marketDataType: int) -> None:  # noqa: N802, N803
        self._put("marketDataType", reqId, int(marketDataType))

    def tickPrice(self, reqId: int, tickType: int, price: float, attrib: Any) -> None:  # noqa: N802, N803
        self._put("tickPrice", reqId, int(tickType), float(price))

    def tickSize(self, reqId: int, tickType: int, size: Any) -> None:  # noqa: N802, N803
        self._put("tickSize", reqId, int(tickType), _number(size))

    def tickOptionComputation(  # noqa: N802
        self,
        reqId: int,  # noqa: N803
        tickType: int,  # noqa: N803
        tickAttrib: Any,  # noqa: N803 - 9.81 and 10.x both, at server version 156+
        impliedVol: Any,  # noqa: N803
        delta: Any,
        optPrice: Any,  # noqa: N803
        pvDividend: Any,  # noqa: N803
        gamma: Any,
        vega: Any,
        theta: Any,
        undPrice: Any,  # noqa: N803
    ) -> None:
        self._put(
            "tickOptionComputation", reqId, tickType, impliedVol, delta, optPrice, pvDividend,
            gamma, vega, theta, undPrice,
        )  # fmt: skip

    def tickString(self, reqId: int, tickType: int, value: str) -> None:  # noqa: N802, N803
        self._put("tickString", reqId, int(tickType), value)

    def tickGeneric(self, reqId: int, tickType: int, value: float) -> None:  # noqa: N802, N803
        self._put("tickGeneric", reqId, int(tickType), float(value))

    # 9.81: size int; 10.x: Decimal. 10.x's updateMktDepth has no isSmartDepth (L2 has it).
    def updateMktDepth(  # noqa: N802
        self,
        reqId: int,  # noqa: N803
        position: int,
        operation: int,
        side: int,
        price: float,
        size: Any,
    ) -> None:
        self.depth_pending = True
        self._put("updateMktDepth", int(reqId), int(position), int(operation), int(side),
                  float(price), float(size))  # fmt: skip

    def updateMktDepthL2(  # noqa: N802
        self,
        reqId: int,  # noqa: N803
        position: int,
        marketMaker: str,  # noqa: N803
        operation: int,
        side: int,
        price: float,
        size: Any,
        isSmartDepth: bool = False,  # noqa: N803
    ) -> None:
        self.depth_pending = True
        self._put("updateMktDepthL2", int(reqId), int(position), str(marketMaker),
                  int(operation), int(side), float(price), float(size),
                  bool(isSmartDepth))  # fmt: skip

    def realtimeBar(  # noqa: N802
        self,
        reqId: int,  # noqa: N803
        time: int,
        open_: float,
        high: float,
        low: float,
        close: float,
        volume: Any,
        wap: Any,
        count: int,
    ) -> None:
        self._put("realtimeBar", reqId, int(time), open_, high, low, close, _number(volume))

    def historicalData(self, reqId: int, bar: Any) -> None:  # noqa: N802, N803
        self._put("historicalData", reqId, bar)

    def historicalDataEnd(self, reqId: int, start: str, end: str) -> None:  # noqa: N802, N803
        self._put("historicalDataEnd", reqId, start, end)

    def historicalDataUpdate(self, reqId: int, bar: Any) -> None:  # noqa: N802, N803
        self._put("historicalDataUpdate", reqId, bar)

    def openOrder(self, orderId: int, contract: Any, order: Any, orderState: Any) -> None:  # noqa: N802, N803
        self._put("openOrder", int(orderId), contract, order, orderState)

    def openOrderEnd(self) -> None:  # noqa: N802
        self._put("openOrderEnd")

    def orderStatus(  # noqa: N802
        self,
        orderId: int,  # noqa: N803
        status: str,
        filled: Any,
        remaining: Any,
        avgFillPrice: float,  # noqa: N803
        permId: int,  # noqa: N803
        *rest: Any,
    ) -> None:
        self._put(
            "orderStatus",
            int(orderId),
            status,
            _number(filled),
            _number(remaining),
            float(avgFillPrice),
            int(permId),
        )

    def completedOrder(self, contract: Any, order: Any, orderState: Any) -> None:  # noqa: N802, N803
        self._put("completedOrder", contract, order, orderState)

    def completedOrdersEnd(self) -> None:  # noqa: N802
        self._put("completedOrdersEnd")

    def execDetails(self, reqId: int, contract: Any, execution: Any) -> None:  # noqa: N802, N803
        self._put("execDetails", reqId, contract, execution)

    def execDetailsEnd(self, reqId: int) -> None:  # noqa: N802, N803
        self._put("execDetailsEnd", reqId)

    def commissionReport(self, commissionReport: Any) -> None:  # noqa: N802, N803 - 9.81
        report = commissionReport
        self._put("commissionReport", report.execId, _number(report.commission), report.currency)

    def commissionAndFeesReport(self, commissionAndFeesReport: Any) -> None:  # noqa: N802, N803
        report = commissionAndFeesReport  # 10.x
        self._put(
            "commissionReport", report.execId, _number(report.commissionAndFees), report.currency
        )

    def position(self, account: str, contract: Any, position: Any, avgCost: float) -> None:  # noqa: N803
        self._put("position", account, contract, _number(position), float(avgCost))

    def positionEnd(self) -> None:  # noqa: N802
        self._put("positionEnd")

    def accountSummary(  # noqa: N802
        self,
        reqId: int,  # noqa: N803
        account: str,
        tag: str,
        value: str,
        currency: str,
    ) -> None:
        self._put("accountSummary", reqId, account, tag, value, currency)

    def accountSummaryEnd(self, reqId: int) -> None:  # noqa: N802, N803
        self._put("accountSummaryEnd", reqId)

    def symbolSamples(self, reqId: int, contractDescriptions: Any) -> None:  # noqa: N802, N803
        self._put("symbolSamples", reqId, list(contractDescriptions))

    def securityDefinitionOptionParameter(  # noqa: N802
        self,
        reqId: int,  # noqa: N803
        exchange: str,
        underlyingConId: int,  # noqa: N803
        tradingClass: str,  # noqa: N803
        multiplier: str,
        expirations: Any,
        strikes: Any,
    ) -> None:
        self._put(
            "securityDefinitionOptionParameter",
            reqId,
            exchange,
            underlyingConId,
            tradingClass,
            multiplier,
            tuple(expirations),
            tuple(strikes),
        )

    def securityDefinitionOptionParameterEnd(self, reqId: int) -> None:  # noqa: N802, N803
        self._put("securityDefinitionOptionParameterEnd", reqId)


_SIZE = struct.Struct("!I")
_CHUNK = 256 * 1024  # bytes read off the socket at most at once
_COMPACT = 1024 * 1024  # bytes handed out before the buffer is compacted
_TICKS = (b"1\x00", b"2\x00")  # tickPrice, tickSize (text messages: the id, then NUL)
_INLINE_MAX = 64  # messages of one read the reader decodes itself when the loop is idle
_MAX_MSG_LEN = 0xFFFFFF  # ibapi's MAX_MSG_LEN (in common on 9.81, const on 10.x)
# ibapi's message loop, as of 10.3x, takes the message id apart and passes it on, and
# decodes protobuf messages from TWS at server version 201 on; before that, fields only
_INTERPRET_TAKES_ID = "msgId" in inspect.signature(Decoder.interpret).parameters
try:
    from ibapi.common import PROTOBUF_MSG_ID as _PROTOBUF_MSG_ID
    from ibapi.server_versions import MIN_SERVER_VER_PROTOBUF as _PROTOBUF_FROM
except ImportError:  # 9.81 and 10.x before protobuf
    _PROTOBUF_MSG_ID, _PROTOBUF_FROM = 0, 1 << 30


def _tick_key(message: bytes) -> tuple[bytes, ...] | None:
    """What a price or size tick is about (message id, request id, tick type), else None."""
    if message[:2] in _TICKS:  # id, version, request id, tick type, ...
        fields = message.split(b"\x00", 4)
        if len(fields) == 5:
            return (fields[0], fields[2], fields[3])
    return None


class _MessageQueue:
    """ibapi's queue between its reader and its message loop: bounded, conflating, stamped.

    ibapi's is an unbounded ``queue.Queue``: when its message loop (decoding, and the
    listeners' translation) falls behind the socket, every message waits in memory, and a
    bar or an order status waits behind every price tick before it. This one:

    * conflates price and size ticks once ``conflate_from`` messages wait: a tick removes
      the one still waiting for the same request and tick type (bid, ask, last...) and
      joins the end of the line, where it arrived, so the loop decodes the latest prices
      rather than each one (:attr:`conflated` counts those removed). Every other message
      waits. Nothing is decoded ahead of a message read before it: the loop gets the
      messages in the order TWS sent them, less the conflated ticks;
    * holds ``maxsize`` messages at most; past that the reader waits for room, so the
      backlog stays in the socket (and in TWS), and nothing is dropped;
    * skips itself when nothing waits (:meth:`deliver`): if the loop is idle, with no
      message queued nor being decoded, the reader decodes the few messages of its read
      itself, which spares a hand-off between threads (each one costs a wake-up, and on a
      busy machine a wait for a core or the GIL of up to milliseconds). One message is
      decoded at a time, by one thread or the other, in the order read.

    Each message carries the time its bytes were read; :meth:`get` tells the message loop's
    thread, through :func:`~ibkrfw.core.queue.set_arrival_ns`, so the events made of it
    carry that time. It has the part of ``queue.Queue`` ibapi uses (``put``, ``get``,
    ``empty``, ``qsize``) and :meth:`put_many`, one lock for a whole read.
    """

    def __init__(self, client: _EClient, maxsize: int, conflate_from: int = 1_000) -> None:
        self._client = client
        self.maxsize = maxsize
        self._conflate_from = conflate_from
        # [arrival_ns, message, tick key], in arrival order; a conflated tick's entry stays
        # in line as a tombstone (message None) until it reaches the front
        self._items: deque[list[Any]] = deque()
        self._gone = 0  # tombstones in _items
        self._ticks: dict[tuple[bytes, ...], list[Any]] = {}
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._full = False  # the reader waits for room
        # a message is being decoded: by the loop (from get() to its msgLoopRec) or inline
        # by the reader (deliver); set under the lock, cleared by the thread decoding. Set
        # until ibapi's loop starts (IBClient._run): the client is not ready for callbacks
        # during the handshake, and what comes before waits for the loop
        self.decoding = True
        self.conflated = 0
        """Ticks replaced by a newer one of the same request and type before decoding."""
        self.blocked_ns = 0
        """How long the reader has waited for room, in all."""

    def qsize(self) -> int:
        return len(self._items) - self._gone

    def empty(self) -> bool:
        return len(self._items) <= self._gone

    def put(self, item: bytes, block: bool = True, timeout: float | None = None) -> None:
        """Add one message (ibapi's own reader thread, which the project's replaces)."""
        conn = self._client.conn
        self.put_many(getattr(conn, "arrived_ns", 0) or time.monotonic_ns(), [item])

    def deliver(self, arrived_ns: int, messages: list[bytes]) -> None:
        """Hand the messages of one read on: decoded at once on this thread, or queued.

        The reader decodes them itself when the message loop is idle (nothing queued, no
        message being decoded) and they are few (at most ``_INLINE_MAX``: more means the
        loop falls behind, and the queue bounds and conflates them); else they are queued.
        """
        if len(messages) <= _INLINE_MAX:
            with self._lock:
                inline = not self.decoding and len(self._items) == self._gone
                if inline:
                    self.decoding = True  # the loop waits meanwhile; cleared below
            if inline:
                try:
                    self._client.decode_inline(arrived_ns, messages)
                finally:
                    self.decoding = False
                return
        self.put_many(arrived_ns, messages)

    def put_many(self, arrived_ns: int, messages: list[bytes]) -> None:
        """Add the messages of one read, waiting for room when ``maxsize`` wait."""
        keyed = [(message, _tick_key(message)) for message in messages]
        ticks = self._ticks
        with self._lock:
            for message, key in keyed:
                if key is not None:
                    waiting = ticks.get(key)
                    if waiting is not None and len(self._items) - self._gone >= self._conflate_from:
                        # the one waiting leaves the line; the new one joins its end, so
                        # nothing read before it is decoded after it (no room needed)
                        waiting[1] = None
                        self._gone += 1
                        self.conflated += 1
                        entry = [arrived_ns, message, key]
                        ticks[key] = entry
                        self._items.append(entry)
                        if self._gone > len(self._items) - self._gone + 64:
                            # in place: amortised O(1) per put; get() may hold the deque
                            live = [e for e in self._items if e[1] is not None]
                            self._items.clear()
                            self._items.extend(live)
                            self._gone = 0
                        continue
                while len(self._items) - self._gone >= self.maxsize:
                    if self._client.connState == EClient.DISCONNECTED:
                        return  # closed for good: its messages are ignored anyway
                    started = time.monotonic_ns()
                    self._full = True
                    self._not_empty.notify()
                    self._not_full.wait(0.2)
                    self.blocked_ns += time.monotonic_ns() - started
                entry = [arrived_ns, message, key]
                if key is not None:
                    ticks[key] = entry
                self._items.append(entry)
            self._not_empty.notify()

    def get(self, block: bool = True, timeout: float | None = None) -> bytes:
        """The oldest message; raises ``queue.Empty`` if none comes within ``timeout``."""
        with self._lock:
            if self.empty() and (not block or not self._not_empty.wait_for(self.qsize, timeout)):
                raise queue.Empty
            self.decoding = True  # until msgLoopRec (skipped after a BadMessage: then the
            # reader queues what it reads, and the next message the loop decodes clears it)
            items = self._items
            entry = items.popleft()
            while entry[1] is None:  # a conflated tick's place: the newest waits further on
                self._gone -= 1
                entry = items.popleft()
            key = entry[2]
            if key is not None and self._ticks.get(key) is entry:
                del self._ticks[key]
            if self._full:
                self._full = False
                self._not_full.notify()
        set_arrival_ns(entry[0])
        return entry[1]  # type: ignore[no-any-return]


class _Connection(Connection):  # type: ignore[misc]
    """ibapi's socket wrapper, reading in linear time, with the project's reader loop.

    ibapi's own ``recvMsg`` returns everything the socket holds (``bytes += bytes`` per 4 KB
    read) and its reader thread then cuts one message at a time off the front of that buffer
    (``buf[4 + size:]`` copies the rest each time): quadratic in a backlog. Measured with
    9.81 on a socket holding a burst: 10,000 messages were read at 251,000 a second,
    200,000 at 15,000 a second, so a burst slowed the reader just as it fell behind.

    This one reads up to 256 KB at a time into a ``bytearray`` and frames messages by an
    offset into it. During the handshake ``recvMsg`` hands out one whole message per call
    (with its size prefix). Once the client is connected (:attr:`pump_into` set), the first
    call from ibapi's reader thread becomes the project's reader loop: it frames every whole
    message of each read and puts them on the :class:`_MessageQueue` at once, stamped with
    the time of the read, and returns only when the socket closes (ibapi's loop then ends).
    """

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self._buf = bytearray()
        self._pos = 0
        self._chunk = bytearray(_CHUNK)
        self.arrived_ns = 0
        """When the bytes of the messages last handed out were read (``monotonic_ns``)."""
        self.pump_into: _MessageQueue | None = None

    def _frames(self) -> list[bytes]:
        """Every whole message in the buffer (without its size prefix), taken out of it."""
        buf, pos, out = self._buf, self._pos, []
        length = len(buf)
        while length - pos >= 4:
            end = pos + 4 + _SIZE.unpack_from(buf, pos)[0]
            if end > length:
                break
            out.append(bytes(buf[pos + 4 : end]))
            pos = end
        if pos == length:
            buf.clear()
            pos = 0
        elif pos >= _COMPACT:
            del buf[:pos]
            pos = 0
        self._pos = pos
        return out

    def _read(self) -> bool | None:
        """Read what the socket has: True if bytes came, None on a time-out, False if closed."""
        sock = self.socket
        if sock is None:
            return False
        try:
            count = sock.recv_into(self._chunk)
        except TimeoutError:  # socket.timeout
            return None
        except OSError:  # closed under us (disconnect) or broken
            self.disconnect()
            return False
        if count == 0:  # closed by the other side
            self.disconnect()
            return False
        self.arrived_ns = time.monotonic_ns()
        self._buf += memoryview(self._chunk)[:count]
        return True

    def recvMsg(self) -> bytes:  # noqa: N802 - ibapi's name
        """One whole message, size prefix included; ``b""`` on a time-out or a closed socket.

        Once :attr:`pump_into` is set, run the reader loop until the socket closes instead.
        """
        if self.pump_into is not None:
            self._pump(self.pump_into)
            return b""
        buf = self._buf
        while True:
            pos = self._pos
            if len(buf) - pos >= 4:
                end = pos + 4 + _SIZE.unpack_from(buf, pos)[0]
                if end <= len(buf):
                    frame = bytes(buf[pos:end])
                    if end == len(buf):
                        buf.clear()
                        self._pos = 0
                    else:
                        self._pos = end
                    return frame
            if not self._read():
                return b""

    def _pump(self, into: _MessageQueue) -> None:
        """The reader loop: read, frame, queue; until the socket closes."""
        while True:
            frames = self._frames()
            if frames:
                into.deliver(self.arrived_ns, frames)
            if self._read() is False:
                return


class _EClient(EClient):  # type: ignore[misc]
    """ibapi's client for one connection attempt, with the reader and queue above."""

    def __init__(self, wrapper: _Wrapper, max_backlog: int) -> None:
        EClient.__init__(self, wrapper)
        self.msg_queue = _MessageQueue(self, max_backlog)

    def decode_inline(self, arrived_ns: int, messages: list[bytes]) -> None:
        """Decode messages on the reader's thread, one at a time, as ibapi's loop would.

        As there, a message that cannot be read is skipped (``BadMessage``), and one over
        ibapi's length limit, or an error in decoding, closes the connection.
        """
        for text in messages:
            set_arrival_ns(arrived_ns)
            try:
                if len(text) > _MAX_MSG_LEN:
                    log.warning("TWS sent a message of %d bytes, past ibapi's limit: the "
                                "connection is closed", len(text))  # fmt: skip
                    self.disconnect()
                    return
                self._interpret(text)
            except BadMessage:
                log.info("a message from TWS could not be read: skipped", exc_info=True)
            except Exception:  # ends ibapi's loop too, which then disconnects (IBClient._run)
                if self.isConnected():  # at a disconnect, ibapi 10.x may fail on what is left
                    log.warning("a message from TWS failed to decode: the connection is closed",
                                exc_info=True)  # fmt: skip
                else:
                    log.debug("a message from TWS failed to decode", exc_info=True)
                self.disconnect()
                return
            finally:
                set_arrival_ns(0)
        self._burst_end_if_idle()

    def _interpret(self, text: bytes) -> None:
        """One iteration of ibapi's message loop (``EClient.run``) without the queue."""
        if not _INTERPRET_TAKES_ID:  # 9.81, 10.x before 10.3x
            self.decoder.interpret(comm.read_fields(text))
            return
        if self.serverVersion() >= _PROTOBUF_FROM:
            msg_id, text = int.from_bytes(text[:4], "big"), text[4:]
        else:
            head, _, text = text.partition(b"\0")
            msg_id = int(head)
        if msg_id > _PROTOBUF_MSG_ID:
            self.decoder.processProtoBuf(text, msg_id - _PROTOBUF_MSG_ID)
        else:
            self.decoder.interpret(comm.read_fields(text), msg_id)

    def msgLoopRec(self) -> None:  # noqa: N802 - ibapi's name
        # ibapi's loop calls it once a message is decoded: what this thread puts on a queue
        # from now on is no longer made of that message
        set_arrival_ns(0)
        self.msg_queue.decoding = False  # the next message may be decoded by either thread
        self._burst_end_if_idle()

    def _burst_end_if_idle(self) -> None:
        wrapper = self.wrapper
        if wrapper.depth_pending and self.msg_queue.empty():
            wrapper.depth_pending = False  # every message read so far is handled
            wrapper._put("depthBurstEnd")

    def setConnState(self, connState: int) -> None:  # noqa: N802, N803 - ibapi's names
        EClient.setConnState(self, connState)
        # connect() says CONNECTED once the handshake is done, then starts ibapi's reader
        # thread: its first read becomes the project's reader loop (see _Connection).
        conn = self.conn
        if connState == EClient.CONNECTED and isinstance(conn, _Connection):
            conn.pump_into = self.msg_queue

    # ibapi's connect() makes its Connection and starts its reader thread on it at once:
    # the connection is swapped for ours as it is assigned.
    @property
    def conn(self) -> Connection | None:
        return self.__dict__.get("_conn")

    @conn.setter
    def conn(self, value: Connection | None) -> None:
        if value is not None and not isinstance(value, _Connection):
            value = _Connection(value.host, value.port)
        self.__dict__["_conn"] = value


_CANCEL_TAKES_ORDER_CANCEL = "orderCancel" in inspect.signature(EClient.cancelOrder).parameters


@final
class IBClient:
    """One API connection, its state machine, its rate limit and its reconnections.

    :meth:`connect` opens the socket, starts ibapi's threads and waits (at most the
    configuration's ``connect_timeout``) for ``nextValidId`` and ``managedAccounts``. If the
    socket is lost later, the client reconnects by itself after a :class:`Backoff` delay, again
    and again, until :meth:`close`. Every change of state reaches the listeners as a
    :class:`~ibkrfw.ibkr.Transition`.

    Args:
        config: Where to connect, and the limits.
        backoff: The delays between reconnection attempts (1 s doubling to 60 s by default).
        reconnect: False to stay disconnected when the socket is lost.
        max_backlog: How many messages read off the socket may wait to be decoded. Past it
            the reader waits (the rest stays in the socket and in TWS: nothing is dropped),
            which bounds this process's memory; the time the reader waited is
            :attr:`reader_blocked_s`. Price and size ticks waiting are conflated once 1,000
            messages wait (see :attr:`conflated`), so only a flood of other messages
            reaches the bound.

    Raises:
        ConfigError: if ``max_backlog`` is not a whole number of at least 1.

    Example:
        >>> from ibkrfw.testing import FakeTWS
        >>> with FakeTWS() as tws:
        ...     client = IBClient(IBKRConfig(port=tws.port))
        ...     client.connect()
        ...     ready = (client.account, client.monitor.state.value)
        ...     client.close()
        >>> ready
        ('DU1234567', 'connected')
    """

    def __init__(
        self,
        config: IBKRConfig,
        *,
        backoff: Backoff | None = None,
        reconnect: bool = True,
        max_backlog: int = 50_000,
    ) -> None:
        if isinstance(max_backlog, bool) or not isinstance(max_backlog, int) or max_backlog < 1:
            raise ConfigError(
                f"IBClient(max_backlog={max_backlog!r}): give how many messages may wait to "
                "be decoded, a whole number of at least 1 (50000 by default)"
            )
        self.max_backlog = max_backlog
        self.config = config
        self.monitor = ConnectionMonitor()
        self.backoff = backoff or Backoff()
        self.reconnect = reconnect
        self.account = ""
        """The account traded (the configured one, or the login's first)."""
        self.next_valid_id = 0
        """The last ``nextValidId`` received."""
        self.server_version = 0
        self._listeners: list[Listener] = []
        self._rate = MessageRate(config.max_messages_per_second)
        self._send_lock = threading.Lock()
        self._state_lock = threading.RLock()
        self._client: _EClient | None = None
        self._thread: threading.Thread | None = None
        self._generation = 0
        self._ready = threading.Event()
        self._settled = threading.Event()  # ready, or the socket closed while connecting
        self._opening = False
        self._got_id = self._got_accounts = False
        self._failure: tuple[int, str] | None = None
        self._closing = threading.Event()
        self._reconnector: threading.Thread | None = None
        self._req_id = REQUEST_ID_BASE
        self._pending: dict[int | str, _Pending] = {}
        self.sent_counts: Counter[str] = Counter()
        """How many messages were sent, by ``EClient`` method name (for monitoring)."""

    @property
    def backlog(self) -> int:
        """Messages read off the socket and not decoded yet (at most ``max_backlog``)."""
        client = self._client
        return 0 if client is None else client.msg_queue.qsize()

    @property
    def conflated(self) -> int:
        """Price and size ticks the current connection replaced by newer ones before decoding.

        Once 1,000 messages wait to be decoded, a tick removes the one waiting for the same
        request and tick type and joins the end of the line (nothing is decoded ahead of a
        message read before it); bars, order and account messages are never conflated.
        """
        client = self._client
        return 0 if client is None else client.msg_queue.conflated

    @property
    def reader_blocked_s(self) -> float:
        """How long the current connection's reader waited for ``max_backlog`` to allow more."""
        client = self._client
        return 0.0 if client is None else client.msg_queue.blocked_ns / 1e9

    # --- listeners -------------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        """Pass every callback and transition to ``listener`` from now on."""
        with self._state_lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop passing callbacks to ``listener``; close the connection when none is left.

        The broker and the data feed of a run share one client this way: whichever stops
        last disconnects.
        """
        with self._state_lock:
            if listener in self._listeners:
                self._listeners.remove(listener)
            last = not self._listeners
        if last:
            self.close()

    def _notify(self, transition: Transition | None) -> None:
        if transition is None:
            return
        log.info(
            "IB connection %s -> %s (%s)",
            transition.before.value,
            transition.after.value,
            transition.reason,
        )
        for listener in list(self._listeners):
            try:
                listener.on_transition(transition)
            except Exception:  # a listener's bug must not kill ibapi's thread
                log.exception("listener %r failed on %s", listener, transition)

    # --- connecting --------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        """Whether the API is ready and IB reachable (orders may be sent)."""
        return self.monitor.state is ConnectionState.CONNECTED

    def connect(self) -> None:
        """Connect and wait until the API is ready.

        A client id still in use (326) is tried again, with growing pauses, until
        ``connect_timeout`` runs out: TWS takes a moment to notice a closed connection.

        Raises:
            BrokerError: if TWS refuses or does not answer in time (with IB's code if it
                gave one, e.g. 326 for a client id already in use).
        """
        self._closing.clear()
        deadline = time.monotonic() + self.config.connect_timeout
        delay = 0.2
        while True:
            try:
                self._open()
                return
            except BrokerError:
                # 326: the id is still held, often by this very program's last connection,
                # which TWS has not seen close yet. Back off and try again while time is left.
                failure = self._failure
                left = deadline - time.monotonic()
                if failure is None or failure[0] != 326 or left <= delay:
                    raise
                log.info("client id %d still in use; trying again in %.1f s",
                         self.config.client_id, delay)  # fmt: skip
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _open(self) -> None:
        with self._state_lock:
            self._generation += 1
            generation = self._generation
            self._ready.clear()
            self._settled.clear()
            self._got_id = self._got_accounts = False
            self._failure = None
            client = _EClient(_Wrapper(self, generation), self.max_backlog)
            self._client = client
            self._opening = True
        try:
            self._open_with(client, generation)
        finally:
            self._opening = False

    def _open_with(self, client: _EClient, generation: int) -> None:
        config = self.config
        client.connect(config.host, config.port, config.client_id)
        if not client.isConnected():
            failure = self._failure
            self._client = None
            code = f" (code {failure[0]}: {failure[1]})" if failure else ""
            raise BrokerError(
                f"cannot connect to TWS/Gateway at {config.host}:{config.port} as client id "
                f"{config.client_id}{code}; is it running, with the API enabled on this port?"
            )
        self.server_version = int(client.serverVersion() or 0)
        self._notify(self.monitor.socket_connected())
        thread = threading.Thread(
            target=self._run, args=(client,), name=f"ibkrfw-ib-{generation}", daemon=True
        )
        self._thread = thread
        thread.start()
        self._settled.wait(config.connect_timeout)
        if not self._ready.is_set():
            failure = self._failure
            self._drop(client)
            detail = f"code {failure[0]}: {failure[1]}" if failure else "no answer"
            raise BrokerError(
                f"TWS/Gateway at {config.host}:{config.port} did not make the API ready within "
                f"{config.connect_timeout:g} s ({detail})"
            )

    def _run(self, client: _EClient) -> None:
        client.msg_queue.decoding = False  # from now on the reader may decode (deliver)
        try:
            client.run()
        except Exception:  # ibapi 10.x can raise on a message queued at disconnect
            log.debug("ibapi's message loop ended with an exception", exc_info=True)
            if client.isConnected():
                client.disconnect()

    def _drop(self, client: _EClient) -> None:
        with self._state_lock:
            self._generation += 1  # whatever the old client says from now on is ignored
        with contextlib.suppress(OSError):
            client.disconnect()

    def close(self, timeout: float = 5.0) -> None:
        """Disconnect for good: no reconnection after this."""
        self._closing.set()
        client = self._client
        if client is not None:
            with contextlib.suppress(OSError):
                client.disconnect()
        for thread in (self._thread, self._reconnector):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout)
        self._fail_pending(RequestError("the connection was closed", code=None))

    def _lost(self, reason: str) -> None:
        self._fail_pending(RequestError(f"the connection was lost ({reason})", code=None))
        self._notify(self.monitor.socket_lost(reason))
        if self._closing.is_set() or not self.reconnect:
            return
        with self._state_lock:
            if self._reconnector is not None and self._reconnector.is_alive():
                return
            self._reconnector = threading.Thread(
                target=self._reconnect_loop, name="ibkrfw-ib-reconnect", daemon=True
            )
            self._reconnector.start()

    def _reconnect_loop(self) -> None:
        while not self._closing.is_set():
            delay = self.backoff.next()
            log.info("reconnecting to TWS/Gateway in %.1f s", delay)
            if self._closing.wait(delay):
                return
            try:
                self._open()
            except BrokerError as exc:
                log.warning("reconnection failed: %s", exc)
                continue
            self.backoff.reset()
            return

    # --- receiving ---------------------------------------------------------------------------
    def _receive(self, generation: int, name: str, args: tuple[Any, ...]) -> None:
        if generation != self._generation:
            return  # an earlier connection's last words
        if name == "connectionClosed":
            self._ready.clear()
            if self._opening:  # connect() or the reconnection loop reports it
                self._notify(self.monitor.socket_lost("socket closed while connecting"))
                self._settled.set()
            elif self.monitor.state is not ConnectionState.DISCONNECTED:
                self._lost("socket closed")
            return
        if name == "error":
            self._error(*args)
        elif name == "nextValidId":
            self.next_valid_id = args[0]
            self._got_id = True
            self._check_ready()
        elif name == "managedAccounts":
            accounts = [a for a in args[0].split(",") if a]
            self.account = self.config.account or (accounts[0] if accounts else "")
            self._got_accounts = True
            self._check_ready()
        self._collect(name, args)
        for listener in list(self._listeners):
            try:
                listener.on_message(name, args)
            except Exception:
                log.exception("listener %r failed on %s", listener, name)

    def _check_ready(self) -> None:
        if self._got_id and self._got_accounts and not self._ready.is_set():
            self._ready.set()
            self._settled.set()
            self._notify(self.monitor.api_ready())

    def _error(self, req_id: int, code: int, text: str) -> None:
        if req_id != -1 or ConnectionMonitor.is_warning(code) or self._opening:
            # about one request or order: its owner (broker, feed, request()) reports it
            log.debug("IB message %d (request %d): %s", code, req_id, text)
        else:
            log.warning("IB error %d: %s", code, text)
        if code in (326, 502) and not self._ready.is_set():
            self._failure = (code, text)
        pending = self._pending.get(req_id)
        if pending is not None and not ConnectionMonitor.is_notice(code):
            pending.error = RequestError(f"IB error {code}: {text}", code=code)
            pending.done.set()
        if req_id == -1 or code in (1100, 1101, 1102, 1300, 326, 502, 504):
            self._notify(self.monitor.on_code(code, text))

    def _collect(self, name: str, args: tuple[Any, ...]) -> None:
        if not self._pending:
            return
        if name in _ROWS_BY_ID or name in _ENDS_BY_ID:
            pending = self._pending.get(args[0])
            if pending is not None:
                if name in _ROWS_BY_ID:
                    pending.rows.append(args[1:])
                if name in _ENDS_BY_ID:
                    pending.done.set()
        elif name in _ROWS_NO_ID or name in _ENDS_NO_ID:
            pending = self._pending.get(_ENDS_NO_ID.get(name, name))
            if pending is not None:
                if name in _ROWS_NO_ID:
                    pending.rows.append(args)
                else:
                    pending.done.set()

    def _fail_pending(self, error: RequestError) -> None:
        for pending in list(self._pending.values()):
            if not pending.done.is_set():
                pending.error = error
                pending.done.set()

    # --- sending -----------------------------------------------------------------------------
    def new_req_id(self) -> int:
        """Return a fresh request id, above :data:`~ibkrfw.ibkr.client.REQUEST_ID_BASE`.

        IB reports errors about requests and about orders through the same id field, so the
        two must never meet: order ids count up from ``nextValidId``, request ids from a
        billion.
        """
        with self._state_lock:
            self._req_id += 1
            return self._req_id

    def send(self, method: str, *args: Any) -> bool:
        """Call ``EClient.<method>(*args)``, waiting as long as the message rate requires.

        Returns:
            False if there is no socket (nothing was sent), True otherwise.
        """
        with self._send_lock:
            client = self._client
            if client is None or not client.isConnected():
                return False
            wait = self._rate.delay(time.monotonic())
            if wait > 0:
                time.sleep(wait)
            try:
                getattr(client, method)(*args)
            except OSError as exc:
                log.warning("sending %s failed: %s", method, exc)
                return False
            self._rate.sent(time.monotonic())
            self.sent_counts[method] += 1
            return True

    def cancel_order(self, order_id: int) -> bool:
        """Send ``cancelOrder`` with the signature the installed client has."""
        if _CANCEL_TAKES_ORDER_CANCEL:
            from ibapi.order_cancel import OrderCancel  # 10.x only

            return self.send("cancelOrder", order_id, OrderCancel())
        return self.send("cancelOrder", order_id)

    def request(
        self,
        method: str,
        *args: Any,
        rows: str,
        timeout: float | None = None,
        on_sent: Callable[[], None] | None = None,
        req_id: int | None = None,
    ) -> list[tuple[Any, ...]]:
        """Send a request and return the rows of its answer, once its end marker arrived.

        Args:
            method: The ``EClient`` method. Its first argument is the request id when ``rows``
                is answered by request id (``contractDetails``, ``historicalData``,
                ``accountSummary``, ``execDetails``, ``symbolSamples``): pass ``args``
                without it. ``symbolSamples`` is one message, its rows and its end at once.
            args: The method's other arguments.
            rows: The callback that carries the answer's rows.
            timeout: Seconds to wait; the configuration's ``request_timeout`` by default.
            on_sent: Called once the request is written to the socket (not if it could not
                be): a pacer counts its intervals from there, not from before a wait for
                the message rate or the send lock.
            req_id: The request id to use (from :meth:`new_req_id`), for a request answered
                by id that the caller must cancel afterwards (a subscription, such as
                ``reqAccountSummary``); a fresh one by default.

        Raises:
            RequestError: if IB answers with an error, the connection is lost or closed, or
                no answer arrives in time.
        """
        by_id = rows in _ROWS_BY_ID
        if not by_id and rows not in _ROWS_NO_ID:
            raise ValueError(f"{rows!r} is not the answer of a request")
        pending = _Pending()
        key: int | str = (self.new_req_id() if req_id is None else req_id) if by_id else rows
        if key in self._pending:
            raise RequestError(f"a {rows} request is already waiting for its answer", code=None)
        self._pending[key] = pending
        try:
            sent = self.send(method, key, *args) if by_id else self.send(method, *args)
            if not sent:
                raise RequestError(f"{method}: not connected", code=None)
            if on_sent is not None:
                on_sent()
            wait = self.config.request_timeout if timeout is None else timeout
            if not pending.done.wait(wait):
                if by_id and method == "reqHistoricalData":
                    self.send("cancelHistoricalData", key)
                raise RequestError(f"{method}: no answer within {wait:g} s", code=None)
            if pending.error is not None:
                raise pending.error
            return pending.rows
        finally:
            del self._pending[key]

    def __repr__(self) -> str:
        config = self.config
        return (
            f"IBClient({config.host}:{config.port}, client_id={config.client_id}, "
            f"{self.monitor.state.value})"
        )
