"""The project's side of ibapi's reader: whole messages in linear time, stamped, bounded."""

from __future__ import annotations

import queue
import socket
import struct
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from ibapi.client import EClient
from ibapi.reader import EReader

from ibkrfw import ConfigError
from ibkrfw.core import set_arrival_ns
from ibkrfw.ibkr import IBClient, IBKRConfig
from ibkrfw.ibkr.client import _Connection, _EClient, _MessageQueue, _Wrapper


@pytest.fixture(autouse=True)
def _no_arrival_left() -> Iterator[None]:
    """get() stamps the thread that takes a message: here, the test's own."""
    yield
    set_arrival_ns(0)


def frame(text: str) -> bytes:
    payload = text.encode()
    return struct.pack("!I", len(payload)) + payload


def connected() -> tuple[socket.socket, _Connection]:
    ours, theirs = socket.socketpair()
    conn = _Connection("127.0.0.1", 0)
    theirs.settimeout(1)
    conn.socket = theirs
    return ours, conn


def test_reader_connection_hands_out_one_whole_message_per_call_whatever_the_chunks() -> None:
    ours, conn = connected()
    messages = [frame(f"1\x002\x00{i}\x00" + "x" * (i % 7)) for i in range(50)]
    data = b"".join(messages)
    try:
        for cut in (1, 3, 2, 900):  # a message split over reads, several in one read
            part, data = data[:cut], data[cut:]
            ours.sendall(part)
        ours.sendall(data)
        got = [conn.recvMsg() for _ in messages]
    finally:
        conn.disconnect()
        ours.close()
    assert got == messages


def test_reader_connection_stamps_the_read_and_ends_after_the_last_whole_message() -> None:
    ours, conn = connected()
    before = time.monotonic_ns()
    ours.sendall(frame("a\x00") + frame("b\x00") + b"\x00\x00")  # and half a size prefix
    ours.close()
    assert conn.recvMsg() == frame("a\x00")
    assert before <= conn.arrived_ns <= time.monotonic_ns()
    assert conn.recvMsg() == frame("b\x00")
    assert conn.recvMsg() == b"" and not conn.isConnected()  # closed by the other side


def test_reader_burst_backlog_is_read_in_linear_time() -> None:
    """200,000 messages waiting at once: ibapi's own reader took 13 s here (quadratic)."""
    count = 200_000
    one = frame("1\x006\x001001\x001\x00100.25\x00100\x007\x00")
    ours, conn = connected()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    got: queue.Queue[bytes] = queue.Queue()
    writer = threading.Thread(target=ours.sendall, args=(one * count,))
    started = time.perf_counter()
    writer.start()
    reader = EReader(conn, got)  # ibapi's reader thread, on our connection
    reader.start()
    try:
        for _ in range(count):
            assert got.get(timeout=10) == one[4:]
        elapsed = time.perf_counter() - started
    finally:
        conn.disconnect()
        ours.close()
        writer.join(5)
        reader.join(5)
    assert elapsed < 5.0, f"{count} messages took {elapsed:.1f} s"


def test_reader_queue_is_bounded_and_stamps_what_it_hands_out() -> None:
    client = _EClient(_Wrapper(IBClient(IBKRConfig()), 1), 3)
    assert isinstance(client.msg_queue, _MessageQueue)
    ours, conn = connected()
    client.conn = conn
    client.connState = EClient.CONNECTED
    ours.sendall(b"".join(frame(f"m{i}\x00") for i in range(10)))
    reader = EReader(conn, client.msg_queue)
    reader.start()
    try:
        deadline = time.monotonic() + 5
        while client.msg_queue.qsize() < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        assert client.msg_queue.qsize() == 3  # full: the reader waits, nothing is dropped
        texts = [client.msg_queue.get(timeout=5) for _ in range(10)]
        assert client.msg_queue.blocked_ns > 0
    finally:
        client.connState = EClient.DISCONNECTED
        conn.disconnect()
        ours.close()
        reader.join(5)
    assert texts == [f"m{i}\x00".encode() for i in range(10)]


def _pumping(
    maxsize: int = 1_000, conflate_from: int = 1_000
) -> tuple[socket.socket, _Connection, _MessageQueue, threading.Thread]:
    ours, conn = connected()
    stub = SimpleNamespace(conn=conn, connState=EClient.CONNECTED)
    into = _MessageQueue(stub, maxsize, conflate_from)  # type: ignore[arg-type]
    conn.pump_into = into
    reader = EReader(conn, into)  # ibapi's reader thread: its first read runs our loop
    reader.start()
    return ours, conn, into, reader


def test_reader_loop_queues_every_message_stamped_with_its_read() -> None:
    ours, conn, into, reader = _pumping()
    try:
        before = time.monotonic_ns()
        ours.sendall(b"".join(frame(f"9\x00{i}\x00") for i in range(100)))
        texts = [into.get(timeout=5) for _ in range(100)]
        assert before <= conn.arrived_ns <= time.monotonic_ns()
    finally:
        ours.close()  # the reader loop ends when the socket closes
        reader.join(5)
    assert texts == [f"9\x00{i}\x00".encode() for i in range(100)]
    assert not reader.is_alive() and not conn.isConnected()


def test_reader_queue_conflates_ticks_past_conflate_from_and_keeps_the_rest_in_order() -> None:
    stub = SimpleNamespace(conn=None, connState=EClient.CONNECTED)
    into = _MessageQueue(stub, 1_000, conflate_from=2)  # type: ignore[arg-type]

    def tick(price: str, tick_type: int = 1, req: int = 7) -> bytes:
        return f"1\x006\x00{req}\x00{tick_type}\x00{price}\x00100\x000\x00".encode()

    bar = b"50\x003\x007\x00...\x00"
    status = b"3\x0012\x00Filled\x00"
    into.put_many(1, [tick("1.0")])  # alone: below conflate_from, nothing to replace
    assert into.conflated == 0
    into.put_many(1, [bar, tick("1.1"), tick("1.2"), status, tick("2.0", 2)])
    into.put_many(2, [tick("1.3"), tick("9.0", req=8)])
    got = [into.get(timeout=1) for _ in range(into.qsize())]
    # from 2 waiting on, the bid (type 1) of request 7 waiting takes each newer price, in
    # its place; the ask (type 2), request 8, the bar and the order status keep theirs
    assert got == [tick("1.3"), bar, status, tick("2.0", 2), tick("9.0", req=8)]
    assert into.conflated == 3


def test_reader_client_swaps_in_the_project_connection() -> None:
    from ibapi.connection import Connection

    client = _EClient(_Wrapper(IBClient(IBKRConfig()), 1), 10)
    client.conn = Connection("127.0.0.1", 4002)  # what ibapi's connect() assigns
    assert type(client.conn) is _Connection and client.conn.port == 4002
    client.conn = None
    assert client.conn is None


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "100"])
def test_ibclient_max_backlog_must_be_a_positive_whole_number(bad: object) -> None:
    with pytest.raises(ConfigError, match=rf"IBClient\(max_backlog={bad!r}\)"):
        IBClient(IBKRConfig(), max_backlog=bad)  # type: ignore[arg-type]


def test_reader_client_clears_the_arrival_once_a_message_is_decoded() -> None:
    from ibkrfw import Stock
    from ibkrfw.core import Inbox
    from ibkrfw.model.events import DataProblem

    client = _EClient(_Wrapper(IBClient(IBKRConfig()), 1), 10)
    set_arrival_ns(1)  # a message read at the dawn of time is being decoded...
    client.msgLoopRec()  # ...and is done with: ibapi's loop says so after each message
    inbox = Inbox()
    inbox.put(DataProblem(ts_ns=0, instrument=Stock("X"), code=None, reason=""))
    inbox.get(0)
    assert inbox.arrival_ns > 1  # stamped when put, not with the old message's time
