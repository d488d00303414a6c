"""Order ids that are never reused, across restarts of the process and of TWS."""

from __future__ import annotations

import json
import os
import threading
from typing import final

from ibkrfw.errors import ConfigError

__all__ = ["OrderIds"]


@final
class OrderIds:
    """Hands out IB order ids: each above every id used before, by this process or an earlier one.

    The highest id handed out is written to ``path`` (atomically: a temporary file renamed
    over the old one) before the id is returned, so a crash right after sending an order cannot
    lead to its id being used again. ``nextValidId`` from TWS only ever raises the next id: a
    lower one (TWS can announce one after a reset) is ignored.

    Args:
        path: The file that keeps the highest id used; None keeps it in memory only.

    Raises:
        ConfigError: if the file exists but cannot be read as ours.

    Example:
        >>> ids = OrderIds()
        >>> ids.observe_next_valid_id(100)
        >>> ids.next(), ids.next()
        (100, 101)
        >>> ids.observe_next_valid_id(5)  # a TWS restart announcing a lower id: ignored
        >>> ids.next()
        102
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else os.fspath(path)
        self._lock = threading.Lock()
        self._highest = 0  # the highest id handed out (or known to be used)
        self._next = 1
        if self.path is not None and os.path.exists(self.path):
            try:
                with open(self.path, encoding="utf-8") as handle:
                    self._highest = int(json.load(handle)["highest_order_id"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"cannot read the order id file {self.path!r}: {exc}") from None
            self._next = self._highest + 1

    @property
    def highest(self) -> int:
        """The highest id handed out or seen so far (0 before any)."""
        return self._highest

    def observe_next_valid_id(self, order_id: int) -> None:
        """Take TWS's ``nextValidId``: the next id is at least it, and never goes down."""
        with self._lock:
            self._next = max(self._next, order_id, self._highest + 1)

    def observe_used(self, order_id: int) -> None:
        """Note an id seen in use (``openOrder``/``orderStatus`` of another client)."""
        with self._lock:
            if order_id > self._highest:
                self._highest = order_id
                self._next = max(self._next, order_id + 1)
                self._save()

    def next(self) -> int:
        """Return a fresh id, recorded as used before it is returned."""
        with self._lock:
            order_id = max(self._next, self._highest + 1)
            self._highest = order_id
            self._next = order_id + 1
            self._save()
            return order_id

    def _save(self) -> None:
        if self.path is None:
            return
        temp = f"{self.path}.tmp"
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump({"highest_order_id": self._highest}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.path)
