"""The TWS socket protocol's framing and field encoding (text protocol, server version 157)."""

from __future__ import annotations

import math
import re
import socket
import struct
from collections.abc import Iterable
from decimal import Decimal

__all__ = [
    "HANDSHAKE_PREFIX",
    "MAX_PAYLOAD",
    "SERVER_VERSION",
    "UNSET_DOUBLE",
    "UNSET_INTEGER",
    "FrameReader",
    "WireError",
    "encode_fields",
    "frame",
    "is_unset",
    "parse_version_range",
    "split_fields",
]

SERVER_VERSION = 157
"""The one server version the fake advertises: the highest ibapi 9.81 knows, the lowest
ib_async accepts, and text-only for IB's 10.x client."""
HANDSHAKE_PREFIX = b"API\0"
MAX_PAYLOAD = 0xFFFFFF
UNSET_INTEGER = 2**31 - 1
UNSET_DOUBLE = "1.7976931348623157E308"
_UNSET_TEXTS = frozenset(("", "1.7976931348623157E308", "1.7976931348623157e+308", "2147483647"))
_RANGE = re.compile(r"^v(\d+)\.\.(\d+)(?:\s+(.*))?$")


class WireError(Exception):
    """The peer broke the protocol (bad framing, a message too long, a bad handshake)."""


def _field(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if math.isinf(value) and value > 0:
            return "Infinity"
        return repr(value)  # "100.0", "1e-05": what Java and Python print for doubles
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def encode_fields(fields: Iterable[object]) -> bytes:
    """Encode fields as the text protocol does: each ASCII text followed by a NUL byte."""
    return b"".join(_field(f).encode("ascii", "backslashreplace") + b"\0" for f in fields)


def frame(payload: bytes) -> bytes:
    """Prefix ``payload`` with its length, a 4-byte big-endian integer.

    Raises:
        WireError: if the payload is longer than the clients accept.
    """
    if len(payload) > MAX_PAYLOAD:
        raise WireError(f"a message of {len(payload)} bytes is over the {MAX_PAYLOAD} limit")
    return struct.pack("!I", len(payload)) + payload


def split_fields(payload: bytes) -> list[str]:
    """Split a text-protocol payload into its fields (the trailing NUL ends the last one)."""
    text = payload.decode("ascii", "replace")
    parts = text.split("\0")
    if parts and parts[-1] == "":
        parts.pop()
    return parts


def is_unset(text: str) -> bool:
    """Tell whether a field holds one of the ways clients write "no value"."""
    return text in _UNSET_TEXTS


def parse_version_range(text: str) -> tuple[int, int, str]:
    """Read a client's handshake, ``v<min>..<max>`` and optional connect options.

    Raises:
        WireError: if the text is not of that form.
    """
    match = _RANGE.match(text.strip("\0"))
    if match is None:
        raise WireError(f"not a TWS API handshake: {text!r}")
    return int(match.group(1)), int(match.group(2)), match.group(3) or ""


class FrameReader:
    """Reads length-prefixed frames from a socket, however TCP splits them."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()

    def read_exact(self, count: int) -> bytes | None:
        """Return the next ``count`` bytes, or None if the peer closed the connection first."""
        while len(self._buffer) < count:
            chunk = self._sock.recv(65536)
            if not chunk:
                return None
            self._buffer.extend(chunk)
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def read_frame(self) -> bytes | None:
        """Return the next frame's payload, or None at the end of the connection.

        Raises:
            WireError: if the announced length is over the limit.
        """
        header = self.read_exact(4)
        if header is None:
            return None
        (size,) = struct.unpack("!I", header)
        if size > MAX_PAYLOAD:
            raise WireError(f"a frame announces {size} bytes, over the {MAX_PAYLOAD} limit")
        return self.read_exact(size)
