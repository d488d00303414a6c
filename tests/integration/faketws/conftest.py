"""An official ibapi client, driven from a test: every wait is bounded."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

ibapi = pytest.importorskip(
    "ibapi", reason="the fake TWS tests need the ibapi client (ibkrfw[ibkr])"
)

from ibapi.client import EClient  # noqa: E402
from ibapi.wrapper import EWrapper  # noqa: E402

from ibkrfw.testing.faketws import FakeTWS  # noqa: E402

WAIT = 10.0  # seconds: the longest any test waits for one message


class Client(EWrapper, EClient):  # type: ignore[misc]
    """Collects every callback it gets as (name, args) in a queue."""

    def __init__(self) -> None:
        EWrapper.__init__(self)
        EClient.__init__(self, wrapper=self)
        self.events: queue.Queue[tuple[str, tuple[Any, ...]]] = queue.Queue()
        self.seen: list[tuple[str, tuple[Any, ...]]] = []
        self.thread: threading.Thread | None = None

    def _put(self, name: str, *args: Any) -> None:
        self.events.put((name, args))

    # the callbacks the tests look at
    def nextValidId(self, orderId: int) -> None:  # noqa: N802, N803 - ibapi's names
        self._put("nextValidId", orderId)

    def managedAccounts(self, accountsList: str) -> None:  # noqa: N802, N803
        self._put("managedAccounts", accountsList)

    def currentTime(self, time: int) -> None:  # noqa: N802
        self._put("currentTime", time)

    def error(self, reqId: int, *args: Any) -> None:  # noqa: N803 - 9.81 and 10.x differ
        code = next(a for a in args if isinstance(a, int) and a >= 100)
        text = next(a for a in args if isinstance(a, str))
        self._put("error", reqId, code, text)

    def connectionClosed(self) -> None:  # noqa: N802
        self._put("connectionClosed")

    def expect(self, name: str, timeout: float = WAIT, **match: Any) -> tuple[Any, ...]:
        """Return the args of the next ``name`` callback (skipping others); fail after timeout."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {name} within {timeout} s; saw {self.seen}")
            try:
                got, args = self.events.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append((got, args))
            if got == name and all(args[int(k[1:])] == v for k, v in match.items()):
                return args

    def start(self, port: int, client_id: int) -> Client:
        self.connect("127.0.0.1", port, client_id)
        self.thread = threading.Thread(target=self.run, name=f"ibapi-{client_id}", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.isConnected():
            self.disconnect()
        if self.thread is not None:
            self.thread.join(WAIT)
            assert not self.thread.is_alive(), "the ibapi client thread did not end"


@pytest.fixture
def tws() -> Iterator[FakeTWS]:
    with FakeTWS() as server:
        yield server


@pytest.fixture
def connect(tws: FakeTWS) -> Iterator[Callable[[int], Client]]:
    """Connect a new ibapi client to the fake TWS with a client id; all stop at the end."""
    made: list[Client] = []

    def new_client(client_id: int) -> Client:
        client = Client().start(tws.port, client_id)
        made.append(client)
        return client

    yield new_client
    for client in made:
        client.stop()
