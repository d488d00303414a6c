"""Validate minute bars, keep them in a bar store, resample them and backtest on the hours.

Run: python examples/store_and_backtest.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ibkrfw import Engine, Stock
from ibkrfw.data import (
    SQLiteBarStore,
    calendar_for,
    clean_bars,
    generate_bars,
    resample_bars,
    validate_bars,
)
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.strategies import MovingAverageCrossover


def main() -> None:
    acme = Stock("ACME")
    calendar = calendar_for(acme)  # NYSE sessions
    # Sixty days of minute bars, generated on every weekday: holidays and the minutes after
    # early closes are not NYSE sessions, so validation reports them.
    raw = generate_bars(["ACME"], freq="1min", start="2024-10-01", periods=390 * 60)
    raw = raw.set_index("timestamp")[["open", "high", "low", "close", "volume"]]
    report = validate_bars(raw, bar_size="1min", calendar=calendar)
    print(report["kind"].value_counts().to_string())
    bars, changes = clean_bars(raw, report, {"outside_session": "drop"})
    print(f"{len(changes)} bar(s) dropped, {len(bars)} kept")

    with (
        tempfile.TemporaryDirectory() as folder,
        SQLiteBarStore(Path(folder) / "bars.sqlite") as store,
    ):
        store.write(acme, "1min", bars)
        print(store.info().to_string(index=False))
        minutes = store.read(acme, "1min", "2024-10-01", "2025-01-01")  # New York dates
    hours = resample_bars(minutes, "1h", calendar=calendar)
    result = Engine(
        MovingAverageCrossover(fast=5, slow=20), DataFrameFeed(hours, acme), SimBroker()
    ).run()
    print(
        f"{len(hours)} hourly bars; {int(result.stats['Trades'])} trades; "
        f"final equity {result.stats['Final equity']:,.2f}"
    )


if __name__ == "__main__":
    main()
