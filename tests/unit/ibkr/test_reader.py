"""The project's side of ibapi's reader: whole messages in linear time, stamped, bounded."""

from __future__ import annotations

import queue
import socket
import struct
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from ibapi.client import EClient
from ibapi.decoder import Decoder
from ibapi.reader import EReader

from ibkrfw import ConfigError
from ibkrfw.core import queue as core_queue
from ibkrfw.core import set_arrival_ns
from ibkrfw.ibkr import IBClient, IBKRConfig, Listener
from ibkrfw.ibkr.client import _Connection, _EClient, _MessageQueue, _tick_key, _Wrapper


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
    assert into.qsize() == 5 and not into.empty()
    got = [into.get(timeout=1) for _ in range(into.qsize())]
    # from 2 waiting on, each newer bid (type 1) of request 7 removes the one waiting and
    # joins the end of the line; the ask (type 2), request 8, the bar and the order status
    # keep their places: nothing is decoded ahead of a message read before it
    assert got == [bar, status, tick("2.0", 2), tick("1.3"), tick("9.0", req=8)]
    assert into.conflated == 3 and into.empty()


def test_reader_queue_never_hands_out_a_tick_before_an_order_status_read_before_it() -> None:
    stub = SimpleNamespace(conn=None, connState=EClient.CONNECTED)
    into = _MessageQueue(stub, 1_000, conflate_from=1)  # type: ignore[arg-type]
    bid_1 = b"1\x006\x007\x001\x001.0\x00100\x000\x00"
    bid_2 = b"1\x006\x007\x001\x002.0\x00100\x000\x00"
    status = b"3\x0012\x00Filled\x00"
    into.put_many(1, [bid_1, status])
    into.put_many(2, [bid_2])  # read after the fill: decoded after it, stamped with its read
    assert into.get(timeout=1) == status and core_queue._ARRIVAL.ns == 1
    assert into.get(timeout=1) == bid_2 and core_queue._ARRIVAL.ns == 2
    assert into.conflated == 1 and into.empty()


def test_reader_queue_conflated_places_do_not_pile_up_while_the_loop_stalls() -> None:
    stub = SimpleNamespace(conn=None, connState=EClient.CONNECTED)
    into = _MessageQueue(stub, 10, conflate_from=1)  # type: ignore[arg-type]
    into.put_many(1, [b"3\x0012\x00Filled\x00"])
    for i in range(1_000):  # no room needed: conflating never makes the reader wait
        into.put_many(2, [f"1\x006\x007\x001\x00{i}\x00100\x000\x00".encode()] * 100)
    assert into.qsize() == 2 and into.conflated == 99_999 and into.blocked_ns == 0
    assert len(into._items) <= 2 * into.qsize() + 65  # tombstones compacted away


# -- conflation never reorders: a property over random interleavings ---------------------


def _message(kind: str, req: int, tick_type: int, seq: int) -> bytes:
    """A tickPrice, a tickSize, an orderStatus or a real-time bar; ``seq`` makes it unique."""
    if kind == "price":
        return f"1\x006\x00{req}\x00{tick_type}\x00{seq}\x00100\x000\x00".encode()
    if kind == "size":
        return f"2\x006\x00{req}\x00{tick_type}\x00{seq}\x00".encode()
    if kind == "status":
        return f"3\x00{seq}\x00Filled\x00".encode()
    return f"50\x003\x00{req}\x00{seq}\x00".encode()


_READS = st.lists(
    st.one_of(
        st.lists(
            st.tuples(
                st.sampled_from(["price", "size", "status", "bar"]),
                st.integers(7, 8),
                st.integers(1, 2),
            ),
            min_size=1,
            max_size=6,
        ),
        st.just("get"),
    ),
    max_size=40,
)


@given(reads=_READS, conflate_from=st.integers(1, 6))
@example(reads=[[("price", 7, 1), ("status", 7, 1)], [("price", 7, 1)]], conflate_from=1)
def test_reader_queue_conflation_keeps_the_order_of_arrival(
    reads: list[list[tuple[str, int, int]] | str], conflate_from: int
) -> None:
    """Random reads (several messages each) and gets; then the loop drains what waits. With
    A the messages read and D those handed out, in order:

    * D is a subsequence of A: nothing is decoded ahead of a message read before it;
    * every message other than a price or size tick is in D;
    * a tick of A missing from D was removed by a newer one of its request and tick type,
      read while it waited with ``conflate_from`` messages or more waiting; with
      ``conflate_from=1`` a tick handed out is the latest of its kind read by then;
    * each message handed out carries the time of its own read; the size and the count
      say what waits and what was removed.
    """
    stub = SimpleNamespace(conn=None, connState=EClient.CONNECTED)
    into = _MessageQueue(stub, 1_000, conflate_from)  # type: ignore[arg-type]
    arrived: list[bytes] = []
    read_of: dict[bytes, int] = {}
    handed: list[bytes] = []
    model: list[bytes] = []
    removed: set[bytes] = set()
    drain = ["get"] * (6 * len(reads) + 1)  # enough for every message read
    for n, read in enumerate([*reads, *drain]):
        if isinstance(read, str):
            if not model:
                assert into.empty()
                with pytest.raises(queue.Empty):
                    into.get(block=False)
                continue
            message = into.get(timeout=1)
            assert message == model.pop(0) and core_queue._ARRIVAL.ns == read_of[message]
            handed.append(message)
            if conflate_from == 1 and (key := _tick_key(message)) is not None:
                later = arrived[arrived.index(message) + 1 :]
                assert not any(_tick_key(m) == key for m in later)
            continue
        messages = [_message(*spec, len(arrived) + i) for i, spec in enumerate(read)]
        for message in messages:
            arrived.append(message)
            read_of[message] = 1_000 + n
            key = _tick_key(message)
            if key is not None and len(model) >= conflate_from:
                waiting = [m for m in model if _tick_key(m) == key]
                if waiting:
                    model.remove(waiting[-1])
                    removed.add(waiting[-1])
            model.append(message)
        into.put_many(1_000 + n, messages)
        assert into.qsize() == len(model) and into.empty() == (not model)
    places = [arrived.index(m) for m in handed]
    assert places == sorted(places) and len(set(places)) == len(places)  # a subsequence
    assert [m for m in arrived if _tick_key(m) is None] == [
        m for m in handed if _tick_key(m) is None
    ]
    assert set(arrived) - set(handed) == removed
    for message in removed:
        later = arrived[arrived.index(message) + 1 :]
        assert any(_tick_key(m) == _tick_key(message) for m in later)
    assert into.conflated == len(removed) and into.empty()


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


class _Recorder(Listener):
    """Records each tickString's value and the thread it was decoded on; stalls on one."""

    def __init__(self, stall_on: str) -> None:
        self.seen: list[tuple[str, str]] = []
        self.stall_on = stall_on

    def on_message(self, name: str, args: tuple[Any, ...]) -> None:
        if name == "tickString":
            self.seen.append((args[2], threading.current_thread().name))
            if args[2] == self.stall_on:  # the decoding thread is busy: reads must queue
                time.sleep(0.3)


def _tick_string(value: str) -> bytes:
    return frame(f"46\x006\x001\x0045\x00{value}\x00")  # tickString: version, id, type, value


def test_reader_decodes_when_the_loop_is_idle_and_keeps_the_order_when_decoding_moves() -> None:
    ib = IBClient(IBKRConfig(), reconnect=False)
    recorder = _Recorder(stall_on="s5")
    ib.add_listener(recorder)
    client = _EClient(_Wrapper(ib, ib._generation), 1_000)
    ours, conn = connected()
    client.conn = conn
    client.serverVersion_ = 157
    client.decoder = Decoder(client.wrapper, 157)
    client.setConnState(EClient.CONNECTED)  # from now on the reader pumps into the queue
    reader = EReader(conn, client.msg_queue)
    reader.start()
    loop = threading.Thread(target=ib._run, args=(client,), name="ibapi-loop")
    loop.start()
    sent: list[str] = []
    try:
        for i in range(10):  # one at a time, the last one decoded each time: the reader does
            sent.append(f"s{i}")
            ours.sendall(_tick_string(sent[-1]))
            time.sleep(0.02)  # s5 stalls its thread 0.3 s: these reads wait behind it
        burst = [f"b{i}" for i in range(200)]  # more than one read decodes: queued
        sent += burst
        ours.sendall(b"".join(_tick_string(v) for v in burst))
        for i in range(10):
            sent.append(f"t{i}")
            ours.sendall(_tick_string(sent[-1]))
            time.sleep(0.02)
        deadline = time.monotonic() + 10
        while len(recorder.seen) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        ours.close()  # the reader ends, then ibapi's loop
        reader.join(5)
        loop.join(5)
    assert [value for value, _ in recorder.seen] == sent  # none lost, none reordered
    threads = {thread for _, thread in recorder.seen}
    assert threads == {reader.name, "ibapi-loop"}  # both decoded
    assert dict(recorder.seen)["s0"] == reader.name  # nothing waited: no hand-off
    assert not reader.is_alive() and not loop.is_alive()
