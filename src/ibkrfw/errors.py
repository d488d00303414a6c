"""The exception tree of ibkrfw.

Every exception the library raises on purpose derives from :class:`IBKRFWError`, and also from
the builtin it resembles, so ``except ValueError`` keeps working::

    IBKRFWError (Exception)
    ├── ConfigError (ValueError)      bad configuration or parameters
    ├── DataError (ValueError)        malformed market data (NaN, high < low, naive time...)
    ├── OrderError (ValueError)       an order request that cannot even be built
    ├── ContractError (LookupError)   a contract lookup that found no one contract
    │   ├── ContractNotFoundError     no contract matches
    │   └── AmbiguousContractError    several match: the candidates are listed
    └── EngineError (RuntimeError)    a run that cannot start or continue
        └── BrokerError               a broker or its connection failed
            └── RequestError          a request to the broker failed (with IB's code)

Routine trading outcomes are *not* exceptions: a risk rule's refusal is an
:class:`~ibkrfw.OrderDenied` event and a broker's refusal an :class:`~ibkrfw.OrderRejected`
event, both delivered to :meth:`Strategy.on_order <ibkrfw.Strategy.on_order>`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = [
    "AmbiguousContractError",
    "BrokerError",
    "ConfigError",
    "ContractError",
    "ContractNotFoundError",
    "DataError",
    "EngineError",
    "IBKRFWError",
    "OrderError",
    "RequestError",
]


class IBKRFWError(Exception):
    """Root of every exception raised on purpose by ibkrfw."""


class ConfigError(IBKRFWError, ValueError):
    """Raise when configuration, parameters or wiring are invalid."""


def _python_setting(name: str, value: object) -> str:
    """Spell a setting as a Python keyword argument: ``tz='America/New_York'``."""
    return f"{name}={value!r}"


class DataError(IBKRFWError, ValueError):
    """Raise when market data is malformed.

    The message names the file and line (or the row), the column and the value received, and
    says what to do. When the fix is to pass a setting (a time zone, a layout), ``fix`` holds
    it as a template with one ``{name}`` field per key of ``settings``, so that each front end
    words it its own way: :meth:`explain` spells the settings as Python keyword arguments
    (``tz='America/New_York'``), and the ``ibkrfw`` command as its options
    (``--tz America/New_York``).

    Args:
        message: What is wrong, and where.
        fix: What to do, with ``{name}`` fields for the settings to pass.
        settings: An example value for each setting named in ``fix``.

    Example:
        >>> err = DataError("bars.csv line 2: no UTC offset", fix="give {tz}",
        ...                 settings={"tz": "America/New_York"})
        >>> str(err)
        "bars.csv line 2: no UTC offset; give tz='America/New_York'"
        >>> err.explain(lambda name, value: f"--{name} {value}")
        'bars.csv line 2: no UTC offset; give --tz America/New_York'
    """

    def __init__(
        self, message: str, *, fix: str = "", settings: Mapping[str, object] | None = None
    ) -> None:
        self.problem = message
        self.fix = fix
        self.settings: dict[str, object] = dict(settings or {})
        super().__init__(self.explain())

    def explain(self, spell: Callable[[str, object], str] = _python_setting) -> str:
        """Return the message with the fix's settings spelled by ``spell(name, value)``."""
        if not self.fix:
            return self.problem
        fix = self.fix.format(**{k: spell(k, v) for k, v in self.settings.items()})
        return f"{self.problem}; {fix}"


class OrderError(IBKRFWError, ValueError):
    """Raise when an order request cannot be built (wrong types, NaN, unknown enum value).

    Only building an :class:`~ibkrfw.OrderRequest` yourself raises it. The order methods of
    :class:`~ibkrfw.Context` turn the same malformed values into an
    :class:`~ibkrfw.OrderDenied` event, as they do requests that are well formed but
    unacceptable (zero quantity, a price off the tick grid): a run never ends for them.
    """


class ContractError(IBKRFWError, LookupError):
    """Raise when a contract lookup cannot name one contract (see its two subclasses).

    Like :class:`DataError`, the fix may name settings, as a template with one ``{name}``
    field per key of ``settings``: :meth:`explain` spells them as Python keyword arguments
    (``con_id=265598``), the ``ibkrfw`` command as its options (``--con-id 265598``).

    Args:
        message: What was looked for, and what was found.
        fix: What to do, with ``{name}`` fields for the settings to pass.
        settings: An example value for each setting named in ``fix``.
        candidates: The contracts found (:class:`~ibkrfw.ibkr.ContractMatch` values), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        fix: str = "",
        settings: Mapping[str, object] | None = None,
        candidates: tuple[object, ...] = (),
    ) -> None:
        self.problem = message
        self.fix = fix
        self.settings: dict[str, object] = dict(settings or {})
        self.candidates = candidates
        super().__init__(self.explain())

    def explain(self, spell: Callable[[str, object], str] = _python_setting) -> str:
        """Return the message with the fix's settings spelled by ``spell(name, value)``."""
        if not self.fix:
            return self.problem
        fix = self.fix.format(**{k: spell(k, v) for k, v in self.settings.items()})
        return f"{self.problem}; {fix}"


class ContractNotFoundError(ContractError):
    """Raise when no contract matches a lookup (IB's answer was empty, or error 200)."""


class AmbiguousContractError(ContractError):
    """Raise when several contracts match where one was asked for; ``candidates`` lists them."""


class EngineError(IBKRFWError, RuntimeError):
    """Raise when a run cannot start or continue (e.g. it was already run, or a feed failed)."""


class BrokerError(EngineError):
    """Raise when a broker or its connection fails (TWS unreachable, no answer in time)."""


class RequestError(BrokerError):
    """Raise when one request to the broker fails.

    Args:
        message: What failed.
        code: The broker's error code (IB's), or None when there was no answer at all.
    """

    def __init__(self, message: str, *, code: int | None) -> None:
        super().__init__(message)
        self.code = code
