"""The project's side of ibapi's reader: whole messages in linear time, stamped, bounded."""

from __future__ import annotations

import queue
import socket
import struct
import threading
import time

import pytest
from ibapi.client import EClient
from ibapi.reader import EReader

from ibkrfw import ConfigError
from ibkrfw.ibkr import IBClient, IBKRConfig
from ibkrfw.ibkr.client import _Connection, _EClient, _MessageQueue, _Wrapper


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
