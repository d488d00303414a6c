"""The ``ibkrfw run`` command: a strategy live on TWS or IB Gateway."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from ibkrfw.cli._common import (
    _MAX_CASH,
    _connection_options,
    _ibkr_config,
    _load_strategy_class,
    _make_strategy,
    _money,
    _parameters,
)
from ibkrfw.errors import ConfigError
from ibkrfw.model._decimal import float_decimal, to_decimal
from ibkrfw.model.instruments import Instrument, Stock

if TYPE_CHECKING:
    from ibkrfw.sim.broker import SimBroker


def _run(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading
    import tomllib

    from ibkrfw.engine.engine import Engine
    from ibkrfw.ibkr import IBClient, IBKRBroker, IBKRDataFeed

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("ibapi").setLevel(logging.WARNING)  # it logs every message at INFO
    tables: dict[str, Any] = {}
    if args.config is not None:
        try:
            with open(args.config, "rb") as handle:
                tables = dict(tomllib.load(handle))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {args.config!r}: {exc}") from None
    run_table: dict[str, Any] = dict(tables.get("run", {}))
    config = _ibkr_config(args, mode=args.mode)
    symbols = args.symbols or ",".join(run_table.get("symbols", []))
    instruments: list[Instrument] = [Stock(s) for s in symbols.split(",") if s]
    if not instruments:
        raise ConfigError("nothing to trade: give --symbols or 'symbols' in the [run] table")
    cls = _load_strategy_class(args.strategy or run_table.get("strategy", ""))
    pairs = [f"{k}={v}" for k, v in run_table.get("parameters", {}).items()] + args.param
    strategy = _make_strategy(cls, _parameters(cls, pairs))
    bar_size = args.bar_size or run_table.get("bar_size", "1min")
    client = IBClient(config)
    feed = IBKRDataFeed(instruments, client=client, bar_size=None if bar_size == "5s" else bar_size)
    state_dir = args.state_dir or run_table.get("state_dir", "ibkrfw-state")
    sandbox_table = tables.get("sandbox", {})
    if not isinstance(sandbox_table, Mapping):
        raise ConfigError("[sandbox] must be a table")
    if args.sandbox:
        broker: Any = _sandbox_broker(args.cash, sandbox_table)
    else:
        on_mismatch = "adopt" if args.adopt else run_table.get("on_mismatch", "refuse")
        broker = IBKRBroker(  # the broker refuses a value other than "refuse" or "adopt"
            client=client, state_dir=state_dir, on_mismatch=cast(Any, on_mismatch)
        )
    alerter, monitor, summary, dashboard = _operations(args, tables, state_dir)
    engine = Engine(strategy, feed, broker, observers=[monitor, summary])
    cancel = args.cancel_on_stop or bool(run_table.get("cancel_on_stop", False))

    def stop(signum: int, frame: object) -> None:
        print(f"ibkrfw: {signal.Signals(signum).name}: stopping", file=sys.stderr, flush=True)
        engine.stop(cancel_orders=cancel)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    timer = None
    if args.duration is not None:
        timer = threading.Timer(args.duration, lambda: engine.stop(cancel_orders=cancel))
        timer.daemon = True
        timer.start()
    mode = "sandbox (IB data, simulated fills)" if args.sandbox else config.mode
    print(f"ibkrfw: running {strategy!r} in {mode} mode on {config.host}:{config.port}",
          flush=True)  # fmt: skip
    if dashboard is not None:
        dashboard.start()
        print(f"ibkrfw: dashboard on {dashboard.url}", flush=True)
    try:
        result = engine.run()
    except Exception as exc:
        if monitor.engine is None:  # it failed before the run began: the monitor never saw it
            from ibkrfw.monitoring import Alert

            alerter.send(Alert("start_failed", f"ibkrfw could not start: {type(exc).__name__}",
                               str(exc), "critical"))  # fmt: skip
        raise
    finally:
        if timer is not None:
            timer.cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if dashboard is not None:
            dashboard.stop()
        alerter.stop()
    working = [o for o in result.order_list if not o.status.is_terminal]
    fees = sum((f.commission for f in result.fill_list), Decimal(0))
    print(
        f"ibkrfw: stopped after {engine.bars_processed} bars, {len(result.fill_list)} fills "
        f"(commissions {fees}), {len(working)} order(s) still working",
        flush=True,
    )
    return 0


_SANDBOX_KEYS = {
    "cash": "starting cash (default 100000; --cash overrides it)",
    "commission": '"ibkr_fixed", "ibkr_tiered", "none", or a number: that much per share',
    "slippage_bps": "a fixed slippage, in basis points of the price",
    "spread_bps": "half of this spread, or of the quote's, is paid on each fill",
    "volume_limit": "the largest fraction of a bar's volume one order may take",
    "fill_timing": '"next_bar" (default) or "this_close"',
    "fill_on": '"bars" (default) or "quotes"',
    "account": '"margin" (default) or "cash"',
}


def _sandbox_broker(cash: Decimal | None, table: Mapping[str, Any]) -> SimBroker:
    """The simulated broker of ``ibkrfw run --sandbox``, from the ``[sandbox]`` table.

    The costs and fill rules are those of a backtest's :class:`~ibkrfw.sim.SimBroker`, so
    sandbox results can be compared with a backtest that has the same settings.
    """
    from ibkrfw.sim.broker import SimBroker
    from ibkrfw.sim.commission import (
        CommissionModel,
        IBKRFixedCommission,
        IBKRTieredCommission,
        PerShareCommission,
        ZeroCommission,
    )
    from ibkrfw.sim.slippage import FixedBpsSlippage, HalfSpreadSlippage, SlippageModel

    unknown = sorted(set(table) - set(_SANDBOX_KEYS))
    if unknown:
        known = "; ".join(f"{k}: {v}" for k, v in _SANDBOX_KEYS.items())
        raise ConfigError(f"[sandbox]: unknown setting(s) {', '.join(unknown)} (known: {known})")

    def number(key: str) -> float:
        value = table[key]
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)

    try:
        chosen = table.get("commission", "none")
        commission: CommissionModel
        if chosen == "ibkr_fixed":
            commission = IBKRFixedCommission()
        elif chosen == "ibkr_tiered":
            commission = IBKRTieredCommission()
        elif chosen == "none":
            commission = ZeroCommission()
        elif isinstance(chosen, int | float) and not isinstance(chosen, bool):
            commission = PerShareCommission(float_decimal(number("commission")))
        else:
            raise ConfigError(f"commission: {_SANDBOX_KEYS['commission']}; got {chosen!r}")
        if "slippage_bps" in table and "spread_bps" in table:
            raise ConfigError("give slippage_bps or spread_bps, not both")
        slippage: SlippageModel | None = None
        if "slippage_bps" in table:
            slippage = FixedBpsSlippage(number("slippage_bps"))
        elif "spread_bps" in table:
            slippage = HalfSpreadSlippage(number("spread_bps"))
        options = {k: table[k] for k in ("volume_limit", "fill_timing", "fill_on", "account")
                   if k in table}  # fmt: skip
        starting = cash if cash is not None else table.get("cash", 100_000)
        return SimBroker(
            to_decimal(starting, "cash"), commission=commission, slippage=slippage, **options
        )
    except (ValueError, TypeError) as exc:  # ConfigError is a ValueError too
        raise ConfigError(f"[sandbox]: {exc}") from None


def _operations(args: argparse.Namespace, tables: Mapping[str, Any], state_dir: str) -> Any:
    """The alerter, monitor, daily summary and dashboard of a run, from its TOML tables."""
    from pathlib import Path

    from ibkrfw.monitoring import Alerter, DailySummary, Dashboard, LiveMonitor
    from ibkrfw.monitoring.alerts import channels_from_config

    def table(name: str) -> dict[str, Any]:
        value = tables.get(name, {})
        if not isinstance(value, Mapping):
            raise ConfigError(f"[{name}] must be a table")
        return dict(value)

    alerts = table("alerts")
    limits = {k: alerts.pop(k) for k in ("quiet_s", "max_per_hour") if k in alerts}
    journal = Path(state_dir) / "alerts.jsonl"  # alerts outlive a restart (and its repeats)
    alerter = Alerter(channels_from_config(alerts), journal=journal, **limits).start()
    settings = table("monitor")
    if "quiet" in settings:
        settings["quiet"] = [tuple(w) for w in settings["quiet"]]
    try:
        monitor = LiveMonitor(alerter=alerter, journal_dir=state_dir, **settings)
        folder = Path(state_dir) / "summaries"
        summary = DailySummary(monitor, alerter=alerter, directory=folder, **table("summary"))
    except TypeError as exc:
        alerter.stop()
        raise ConfigError(f"[monitor] or [summary]: {exc}") from None
    served = table("dashboard")
    where = args.dashboard or served.get("listen")
    dashboard = None
    if where:
        host, _, port = str(where).rpartition(":")
        token_env = served.get("token_env", "IBKRFW_DASHBOARD_TOKEN")
        try:
            dashboard = Dashboard(
                monitor, host=host or "127.0.0.1", port=int(port), token_env=token_env
            )
        except ValueError:
            alerter.stop()
            raise ConfigError(f"--dashboard takes [HOST:]PORT, got {where!r}") from None
        except ConfigError:
            alerter.stop()
            raise
    return alerter, monitor, summary, dashboard


def add_parser(sub: Any) -> None:
    """Add the ``run`` command to ``sub``."""
    run = sub.add_parser(
        "run",
        help="run a strategy live against TWS or IB Gateway (paper by default)",
        description="Run a strategy on IB's live data, trading the paper account unless "
        "--mode live is given, until interrupted (Ctrl-C or SIGTERM).",
    )
    _connection_options(run, "a TOML file with [ibkr] and [run] tables")
    run.add_argument(
        "--mode",
        choices=("paper", "live"),
        default="paper",
        help="paper (default) or live; live trading needs this flag, whatever the file says",
    )
    run.add_argument("--strategy", help="'module:Class' or a built-in (or 'strategy' in [run])")
    run.add_argument(
        "-p", "--param", action="append", default=[], metavar="NAME=VALUE",
        help="a strategy parameter (repeatable)",
    )  # fmt: skip
    run.add_argument("--symbols", help="comma-separated stock symbols (or 'symbols' in [run])")
    run.add_argument("--bar-size", help="bar size for the strategy (default 1min; 5s: IB's own)")
    run.add_argument("--state-dir", help="where order ids are kept (default ./ibkrfw-state)")
    run.add_argument(
        "--sandbox", action="store_true", help="IB's data, the simulator's fills: nothing is sent"
    )
    run.add_argument(
        "--cash",
        type=_money("--cash", positive=True, maximum=_MAX_CASH),
        help="the sandbox's starting cash (default: 'cash' in [sandbox], or 100000)",
    )
    run.add_argument(
        "--cancel-on-stop", action="store_true", help="cancel working orders when stopping"
    )
    run.add_argument(
        "--adopt", action="store_true",
        help="start from the account's positions and orders when they differ from the journal "
        "(instead of refusing to start; or on_mismatch = \"adopt\" in [run])",
    )  # fmt: skip
    run.add_argument("--duration", type=float, help="stop after this many seconds")
    run.add_argument(
        "--dashboard", nargs="?", const="127.0.0.1:8765", metavar="[HOST:]PORT",
        help="serve the dashboard (default 127.0.0.1:8765; a token is needed off loopback)",
    )  # fmt: skip
    run.set_defaults(func=_run)
