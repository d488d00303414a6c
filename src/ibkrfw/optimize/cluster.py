"""Reach a running Dask scheduler by its address, for ``ibkrfw optimize --scheduler``."""

from __future__ import annotations

import importlib
import re
from typing import Any

from ibkrfw._redact import MASK
from ibkrfw.errors import ConfigError

__all__ = ["address_problem", "connect"]

SCHEMES = ("tcp", "tls", "ws", "wss")
"""The protocols of a Dask scheduler's address that ``--scheduler`` takes."""

_EXAMPLE = "tcp://127.0.0.1:8786"
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)$")


def shown(address: str) -> str:
    """``address`` as it may be shown: any user info (``user:password@``) masked."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "", address
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = f"{MASK}@{authority.rpartition('@')[2]}"
    return f"{scheme}{sep}{authority}{slash}{path}"


def address_problem(address: str) -> str | None:
    """What is wrong with a scheduler's address (None: nothing), as a sentence with the fix.

    The address is ``PROTOCOL://HOST:PORT``, PROTOCOL one of :data:`SCHEMES`.

    Example:
        >>> address_problem("tcp://127.0.0.1:8786") is None
        True
        >>> address_problem("127.0.0.1:8786")
        'give the protocol too: tcp://127.0.0.1:8786'
    """
    fix = f"give PROTOCOL://HOST:PORT, e.g. {_EXAMPLE}"
    if not isinstance(address, str) or not address.strip():
        return f"no address: {fix}"
    scheme, sep, rest = address.partition("://")
    if not sep:
        return f"give the protocol too: tcp://{address}" if ":" in address else fix
    if scheme not in SCHEMES:
        return f"the protocol {scheme!r} is not one of {', '.join(SCHEMES)}: {fix}"
    if "@" in rest:
        return f"a scheduler's address carries no user or password: {fix}"
    if "/" in rest.rstrip("/") or "?" in rest:
        return f"an address has no path or query: {fix}"
    host, colon, port = rest.rstrip("/").rpartition(":")
    if not colon or not port:
        return f"no port: {fix} (a scheduler listens on 8786 by default)"
    if not port.isdigit() or not 0 < int(port) < 65536:
        return f"the port {port!r} is not a whole number from 1 to 65535: {fix}"
    if not _HOST.match(host):
        return f"the host {host!r} is not a host name or an IP address: {fix}"
    return None


def connect(address: str, timeout_s: float, option: str = "--scheduler") -> Any:
    """A ``distributed.Client`` of the scheduler at ``address``, waiting at most ``timeout_s``.

    Args:
        address: ``PROTOCOL://HOST:PORT``.
        timeout_s: How long to wait for the scheduler to answer.
        option: How the address is named in messages.

    Raises:
        ConfigError: if the address is malformed, distributed is not installed, or no
            scheduler answers there in time (the message names the address and the fix).
    """
    problem = address_problem(address)
    if problem is not None:
        raise ConfigError(f"{option} {shown(address)}: {problem}")
    if not timeout_s > 0:
        raise ConfigError(f"the scheduler's timeout must be above 0 seconds, got {timeout_s!r}")
    try:  # by name: typed the same whether the optional extra is installed or not
        distributed = importlib.import_module("distributed")
    except ImportError:  # pragma: no cover - depends on the installation
        raise ConfigError(
            f'{option} needs Dask\'s distributed: pip install "ibkrfw[dask]"'
        ) from None
    try:
        return distributed.Client(address, timeout=f"{timeout_s}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        reason = reason.replace(address, shown(address))
        raise ConfigError(
            f"{option} {shown(address)}: no Dask scheduler answered within {timeout_s:g} s "
            f"({reason}); start one there (`dask scheduler` and `dask worker "
            f"{shown(address)}` on each machine, ibkrfw installed on every one), give the "
            "address it prints, or leave --scheduler out to run on this machine"
        ) from None
