"""Connecting the official ibapi client to the fake TWS over a real socket."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import pytest

from ibkrfw.testing.faketws import FakeTWS

Connect = Callable[[int], Any]


def test_handshake_start_api_and_what_a_client_is_told(tws: FakeTWS, connect: Connect) -> None:
    client = connect(7)
    assert client.expect("managedAccounts") == ("DU1234567",)
    assert client.expect("nextValidId") == (1,)
    for code in (2104, 2106, 2158):  # farm notices: information, not failures
        client.expect("error", a1=code)
    assert client.serverVersion() == 157
    assert tws.wait_for(lambda: tws.client_ids == [7])
    handshake, start_api = tws.messages("in")[:2]
    low, high = map(int, handshake.fields[0][1:].split()[0].split(".."))
    assert low <= 157 <= high  # 9.81 sends v100..157, 10.51 v100..226
    assert start_api.fields == ("71", "2", "7", "")
    assert start_api.client_id is None  # recorded as it arrived, before the id was known
    out_ids = [m.msg_id for m in tws.messages("out", client_id=7)]
    assert out_ids == [15, 9, 4, 4, 4]


def test_current_time_and_ids(tws: FakeTWS, connect: Connect) -> None:
    client = connect(1)
    client.expect("nextValidId")
    client.reqCurrentTime()
    (now,) = client.expect("currentTime")
    assert abs(now - time.time()) < 5
    tws.next_order_id = 42
    client.reqIds(1)
    assert client.expect("nextValidId") == (42,)
    assert [m.fields for m in tws.messages("in", client_id=1, msg_id=8)] == [("8", "1", "1")]


def test_a_request_whose_reply_was_read_is_on_record(
    tws: FakeTWS, connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fake records a request once handled, after its replies: a slow finish must not let
    # a test that has read the reply find the request missing (a flaky CI run did).
    client = connect(4)
    client.expect("nextValidId")
    handle = tws._dispatch

    def handle_then_dawdle(session: Any, fields: list[str]) -> None:
        handle(session, fields)
        time.sleep(0.3)

    monkeypatch.setattr(tws, "_dispatch", handle_then_dawdle)
    client.reqCurrentTime()
    client.expect("currentTime")
    assert [m.fields[0] for m in tws.messages("in", client_id=4)] == ["49"]
    assert tws.messages("out", client_id=4, msg_id=49)  # what the client read is on record


def test_several_clients_and_a_client_id_in_use(tws: FakeTWS, connect: Connect) -> None:
    first, second = connect(1), connect(2)
    first.expect("nextValidId")
    second.expect("nextValidId")
    assert tws.wait_for(lambda: sorted(tws.client_ids) == [1, 2])
    again = connect(1)
    _, _, text = again.expect("error", a1=326)
    assert "client id is already in use" in text
    again.expect("connectionClosed")
    assert sorted(tws.client_ids) == [1, 2]
    first.reqCurrentTime()
    first.expect("currentTime")  # the first client is undisturbed


def test_connectivity_notices_and_a_dropped_connection(tws: FakeTWS, connect: Connect) -> None:
    client = connect(3)
    client.expect("nextValidId")
    tws.connectivity_lost()
    assert client.expect("error", a1=1100)[2].startswith("Connectivity between IB and Trader")
    tws.connectivity_restored(data_kept=False)
    assert client.expect("error", a1=1101)[2].endswith("data lost.")
    tws.connectivity_restored(data_kept=True)
    assert client.expect("error", a1=1102)[2].endswith("data maintained.")
    tws.send_error(2103, "Market data farm connection is broken:usfarm")
    client.expect("error", a1=2103)
    tws.drop_connections()
    client.expect("connectionClosed")
    assert tws.wait_for(lambda: tws.client_ids == [])


def _raw_handshake(port: int, text: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"API\0" + struct.pack("!I", len(text)) + text)
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
        return b"".join(chunks)


def test_a_client_that_cannot_speak_157_is_told_nothing_and_closed(
    tws: FakeTWS, caplog: object
) -> None:
    assert _raw_handshake(tws.port, b"v158..178") == b""
    assert "supports server versions 158..178" in caplog.text  # type: ignore[attr-defined]


def test_a_connection_that_is_not_the_api_is_closed(tws: FakeTWS) -> None:
    with socket.create_connection(("127.0.0.1", tws.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert sock.recv(4096) == b""


def _frames(sock: socket.socket, until: Callable[[list[str]], bool]) -> list[list[str]]:
    """Read the fake's messages (as fields) until one satisfies ``until`` (5 s at most)."""
    buffer, seen = b"", []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        while len(buffer) >= 4 and len(buffer) >= 4 + struct.unpack("!I", buffer[:4])[0]:
            size = struct.unpack("!I", buffer[:4])[0]
            fields = buffer[4 : 4 + size].decode().split("\0")[:-1]
            buffer = buffer[4 + size :]
            seen.append(fields)
            if until(fields):
                return seen
        buffer += sock.recv(65536)
    raise AssertionError(f"not seen in 5 s; read {seen!r}")


def _frame(*fields: str) -> bytes:
    body = "".join(f"{f}\0" for f in fields).encode()
    return struct.pack("!I", len(body)) + body


def test_a_malformed_request_is_answered_320_and_the_connection_stays(
    tws: FakeTWS, caplog: pytest.LogCaptureFixture
) -> None:
    # TWS answers a request it cannot read with error 320; the fake used to end the
    # connection with a traceback, so a client's typo looked like a network failure.
    with socket.create_connection(("127.0.0.1", tws.port), timeout=5) as sock:
        sock.sendall(b"API\0" + struct.pack("!I", 9) + b"v100..157")
        sock.sendall(_frame("71", "2", "9", ""))
        _frames(sock, lambda f: f[0] == "9")  # nextValidId
        sock.sendall(_frame("1", "11", "x"))  # reqMktData cut short, its id not a number
        sock.sendall(_frame("49", "1"))  # reqCurrentTime
        seen = _frames(sock, lambda f: f[0] == "49")
    errors = [f for f in seen if f[0] == "4" and f[3] == "320"]
    assert len(errors) == 1 and "message 1" in errors[0][4], seen
    assert [msg_id for msg_id, _ in tws.request_errors] == [1]
    assert "could not read message 1" in caplog.text


def test_an_error_in_the_background_replay_is_kept_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # play() used to end silently at an error: a test then waited for bars that never came.
    def broken(count: int = 1) -> int:
        raise RuntimeError("replay broke")

    with FakeTWS.from_sample(["ACME"]) as tws:
        monkeypatch.setattr(tws, "step", broken)
        tws.play(0.001)
        assert tws.wait_for(lambda: tws.replay_error is not None, timeout=5)
        assert str(tws.replay_error) == "replay broke"
        assert "the replay stopped at an error" in caplog.text
