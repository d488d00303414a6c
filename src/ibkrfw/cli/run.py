"""The ``ibkrfw run`` command: a strategy live on TWS or IB Gateway."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from ibkrfw._redact import install_log_redaction
from ibkrfw.cli._common import (
    _MAX_CASH,
    _connection_options,
    _load_strategy_class,
    _make_strategy,
    _money,
    _parameters,
    _symbol_list,
)
from ibkrfw.errors import ConfigError
from ibkrfw.model._decimal import float_decimal, to_decimal
from ibkrfw.model.instruments import Instrument, Stock

if TYPE_CHECKING:
    from ibkrfw.config import SandboxSettings, Settings
    from ibkrfw.sim.broker import SimBroker


def _run(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from ibkrfw.engine.engine import Engine
    from ibkrfw.ibkr import IBClient, IBKRBroker, IBKRDataFeed

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("ibapi").setLevel(logging.WARNING)  # it logs every message at INFO
    install_log_redaction()  # a secret quoted by any library's message is masked in the log
    settings = _run_settings(args)
    run = settings.run
    config = settings.ibkr
    instruments: list[Instrument] = [Stock(s) for s in run.symbols]
    if not instruments:
        raise ConfigError("nothing to trade: give --symbols or 'symbols' in the [run] table")
    cls = _load_strategy_class(run.strategy)
    pairs = [f"{k}={v}" for k, v in run.parameters.items()] + args.param
    strategy = _make_strategy(cls, _parameters(cls, pairs))
    client = IBClient(config)
    bar_size = None if run.bar_size == "5s" else run.bar_size
    feed = IBKRDataFeed(instruments, client=client, bar_size=bar_size)
    state_dir = str(run.state_dir)
    if args.sandbox:
        broker: Any = _sandbox_broker(args.cash, settings.sandbox)
    else:
        broker = IBKRBroker(
            client=client,
            state_dir=state_dir,
            on_mismatch=run.on_mismatch,
            ack_timeout_s=settings.monitor.ack_timeout_s,  # one setting: warning and alert
        )
    try:  # until the engine runs (and stops the broker itself), a failure closes the journal
        alerter, monitor, summary, dashboard = _operations(args, settings, state_dir)
        engine = Engine(
            strategy, feed, broker, observers=[monitor, summary],
            risk_rules=settings.risk.rules(), risk_monitors=settings.risk.monitors(),
            protection=_protection(settings, instruments),
        )  # fmt: skip
        if dashboard is not None:
            try:
                dashboard.start()
            except OSError as exc:  # the port taken, an address not this machine's
                alerter.stop()
                where = "--dashboard" if args.dashboard else "[dashboard] listen"
                raise ConfigError(
                    f"{where}: cannot listen on {args.dashboard or settings.dashboard.listen}: "
                    f"{(exc.strerror or str(exc)).lower()}; choose another address or port in "
                    "[dashboard] listen / --dashboard"
                ) from None
    except BaseException:
        broker.stop()
        raise
    cancel = run.cancel_on_stop
    keep = settings.dashboard.keep_after_stop

    def stop(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        print(f"ibkrfw: {name}: stopping", file=sys.stderr, flush=True)
        engine.stop(cancel_orders=cancel, reason=name)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    timer = None
    if args.duration is not None:
        why = f"duration reached (--duration {args.duration:g})"
        timer = threading.Timer(
            args.duration, lambda: engine.stop(cancel_orders=cancel, reason=why)
        )
        timer.daemon = True
        timer.start()
    mode = "sandbox (IB data, simulated fills)" if args.sandbox else config.mode
    print(f"ibkrfw: running {strategy!r} in {mode} mode on {config.host}:{config.port}",
          flush=True)  # fmt: skip
    if dashboard is not None:
        print(f"ibkrfw: dashboard on {dashboard.url}", flush=True)
    try:
        try:
            result = engine.run()
        except Exception as exc:
            if monitor.engine is None:  # it failed before the run began: unseen by the monitor
                from ibkrfw.monitoring import Alert

                alerter.send(Alert("start_failed", f"ibkrfw could not start: "
                                   f"{type(exc).__name__}", str(exc), "critical"))  # fmt: skip
            raise
        finally:
            if timer is not None:
                timer.cancel()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if engine.stop_reason is not None:  # None: it never ran
                print(f"ibkrfw: stop reason: {engine.stop_reason}", flush=True)
                if keep and dashboard is not None:
                    _keep_serving(dashboard.url)
        working = [o for o in result.order_list if not o.status.is_terminal]
        fees = sum((f.commission for f in result.fill_list), Decimal(0))
        print(
            f"ibkrfw: stopped after {engine.bars_processed} bars, {len(result.fill_list)} fills "
            f"(commissions {fees}), {len(working)} order(s) still working",
            flush=True,
        )
    finally:  # the dashboard serves the final state until here
        if dashboard is not None:
            dashboard.stop()
        alerter.stop()
    return 0


def _keep_serving(url: str) -> None:
    """Wait for SIGINT or SIGTERM while the dashboard serves the run's final state."""
    import os
    import signal
    import threading

    done = threading.Event()

    def end(signum: int, frame: object) -> None:
        print(f"ibkrfw: {signal.Signals(signum).name}: closing the dashboard", file=sys.stderr,
              flush=True)  # fmt: skip
        done.set()

    previous = {sig: signal.signal(sig, end) for sig in (signal.SIGINT, signal.SIGTERM)}
    print(
        f"ibkrfw: the run has stopped; the dashboard keeps serving its final state on {url} "
        f"(--keep-dashboard) until Ctrl-C or SIGTERM (kill {os.getpid()})",
        flush=True,
    )
    try:
        while not done.wait(0.5):  # woken by the handler; the timeout keeps signals handled
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_settings(args: argparse.Namespace) -> Settings:
    """The settings of ``ibkrfw run``: the file's, the environment's, then the options'."""
    from ibkrfw.config import ENV_PREFIX, _check_state_dir, _read, load_settings

    ibkr: dict[str, object] = {"mode": args.mode}  # live needs --mode live, whatever the file says
    if args.port is not None:
        ibkr["port"] = args.port
    if args.client_id is not None:
        ibkr["client_id"] = args.client_id
    symbols = _symbol_list(args.symbols)
    options = {
        "strategy": args.strategy, "symbols": symbols, "bar_size": args.bar_size,
        "state_dir": args.state_dir, "cancel_on_stop": args.cancel_on_stop or None,
        "on_mismatch": "adopt" if args.adopt else None,
    }  # fmt: skip
    run = {key: value for key, value in options.items() if value is not None}
    dashboard: dict[str, object] = {"listen": args.dashboard} if args.dashboard is not None else {}
    if args.keep_dashboard:
        dashboard["keep_after_stop"] = True
    settings = load_settings(
        args.config,
        overrides={"ibkr": ibkr, "run": run, "dashboard": dashboard},
        override_source="the command line",
    )
    _check_state_dir(settings, args.config or "the default")
    # made now: the dashboard's controls journal, the alerts and the summaries write there
    # whatever broker runs (a sandbox's SimBroker keeps no journal of its own to make it)
    settings.run.state_dir.mkdir(parents=True, exist_ok=True)
    if not args.sandbox:  # the sandbox trades nothing: its mode is no one's choice
        _check_mode(args, _read(args.config) if args.config else {}, ENV_PREFIX + "IBKR_MODE")
    return settings


def _protection(settings: Settings, instruments: list[Instrument]) -> Any:
    """The run's :class:`~ibkrfw.risk.Protection` from ``[protection]`` (none: ``()``)."""
    protection = settings.protection.protection(instruments)
    return () if protection is None else protection


def _check_mode(args: argparse.Namespace, tables: Mapping[str, Any], variable: str) -> None:
    """Refuse a mode set in the file (or the environment) that ``--mode`` does not confirm.

    Live trading is never the default: ``[ibkr] mode = "live"`` alone does not trade live, and
    is not silently traded as paper either; the two must agree. (The file was checked: a
    wrong value of ``mode`` has been refused with the file's other problems.)
    """
    import os

    table = tables.get("ibkr")
    given = os.environ.get(variable) or (table.get("mode") if isinstance(table, dict) else None)
    if given is None or given == args.mode or given not in ("paper", "live"):
        return  # not set, agreeing, or wrong (the configuration model says so)
    where = f"{variable}={given}" if os.environ.get(variable) else f'[ibkr] mode = "{given}"'
    if given == "live":
        raise ConfigError(
            f"{args.config or 'the environment'}: {where} asks for live trading; pass "
            "--mode live too, to confirm (ibkrfw run trades paper unless told live twice)"
        )
    raise ConfigError(
        f"{args.config or 'the environment'}: {where} differs from --mode {args.mode}: make "
        "them agree"
    )


def _sandbox_broker(cash: Decimal | None, table: SandboxSettings | Mapping[str, Any]) -> SimBroker:
    """The simulated broker of ``ibkrfw run --sandbox``, from the ``[sandbox]`` table.

    The costs and fill rules are those of a backtest's :class:`~ibkrfw.sim.SimBroker`, so
    sandbox results can be compared with a backtest that has the same settings. ``cash``
    (``--cash``) wins over the table's. A table not yet checked (a mapping, as TOML gives it)
    is checked by the configuration model first.
    """
    from ibkrfw.config import SandboxSettings, settings_from_tables
    from ibkrfw.sim.broker import SimBroker
    from ibkrfw.sim.commission import (
        CommissionModel,
        IBKRFixedCommission,
        IBKRTieredCommission,
        PerShareCommission,
        ZeroCommission,
    )
    from ibkrfw.sim.slippage import FixedBpsSlippage, HalfSpreadSlippage, SlippageModel

    sandbox = (
        table
        if isinstance(table, SandboxSettings)
        else settings_from_tables({"sandbox": table}, source="ibkrfw run --sandbox").sandbox
    )
    commission: CommissionModel
    if sandbox.commission == "ibkr_fixed":
        commission = IBKRFixedCommission()
    elif sandbox.commission == "ibkr_tiered":
        commission = IBKRTieredCommission()
    elif isinstance(sandbox.commission, float):  # the model checked it is 0 or more
        commission = PerShareCommission(float_decimal(sandbox.commission))
    else:
        commission = ZeroCommission()
    slippage: SlippageModel | None = None
    if sandbox.slippage_bps is not None:
        slippage = FixedBpsSlippage(sandbox.slippage_bps)
    elif sandbox.spread_bps is not None:
        slippage = HalfSpreadSlippage(sandbox.spread_bps)
    starting = cash if cash is not None else float_decimal(sandbox.cash)
    return SimBroker(
        to_decimal(starting, "cash"),
        commission=commission,
        slippage=slippage,
        volume_limit=sandbox.volume_limit,
        fill_timing=sandbox.fill_timing,
        fill_on=sandbox.fill_on,
        account=sandbox.account,
    )


def _operations(
    args: argparse.Namespace, settings: Settings | Mapping[str, Any], state_dir: str
) -> Any:
    """The alerter, monitor, daily summary and dashboard of a run, from its settings.

    ``settings`` may be TOML tables not yet checked: the configuration model checks them.
    ``args.dashboard`` (``--dashboard``), if given, wins over ``[dashboard] listen``.
    """
    from pathlib import Path

    from ibkrfw.config import Settings, settings_from_tables, split_listen
    from ibkrfw.monitoring import Alerter, DailySummary, Dashboard, LiveMonitor
    from ibkrfw.monitoring.alerts import Channel, EmailChannel, LogChannel, WebhookChannel

    if not isinstance(settings, Settings):
        settings = settings_from_tables(settings)
    alerts = settings.alerts
    channels: list[Channel] = [LogChannel()]
    if alerts.email is not None:
        email = attrs.asdict(alerts.email, recurse=False)
        try:
            channels.append(EmailChannel(**email))
        except ConfigError as exc:
            raise ConfigError(f"[alerts.email]: {exc}") from None
    for hook in alerts.webhook:
        channels.append(
            WebhookChannel(hook.url.reveal(), hook.format, token_env=hook.token_env,
                           sms_to=hook.sms_to, timeout=hook.timeout)
        )  # fmt: skip
    journal = Path(state_dir) / "alerts.jsonl"  # alerts outlive a restart (and its repeats)
    alerter = Alerter(
        channels, journal=journal, quiet_s=alerts.quiet_s, max_per_hour=alerts.max_per_hour
    ).start()
    try:
        monitor = LiveMonitor(
            alerter=alerter, journal_dir=state_dir,
            mode="sandbox" if getattr(args, "sandbox", False) else getattr(args, "mode", None),
            **attrs.asdict(settings.monitor, recurse=False),
        )  # fmt: skip
        folder = Path(state_dir) / "summaries"
        summary = DailySummary(
            monitor, alerter=alerter, directory=folder,
            **attrs.asdict(settings.summary, recurse=False),
        )  # fmt: skip
        served = settings.dashboard
        where = args.dashboard or served.listen
        dashboard = None
        if where:
            try:
                host, port = split_listen(where)
            except ValueError as exc:
                option = "--dashboard" if args.dashboard else "[dashboard] listen"
                raise ConfigError(f"{option} {where!r}: {exc}") from None
            dashboard = Dashboard(
                monitor, host=host, port=port, token_env=served.token_env,
                tls_cert=served.tls_cert, tls_key=served.tls_key,
                allow_plain_http=served.allow_plain_http,
            )  # fmt: skip
    except Exception:
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
    run.add_argument(
        "--keep-dashboard", action="store_true",
        help="once the run stops, keep serving the dashboard's final state (why it stopped "
        "included) until Ctrl-C or SIGTERM (or keep_after_stop in [dashboard])",
    )  # fmt: skip
    run.set_defaults(func=_run)
