"""Tax lots: the same trades realised first in first out, last in first out, dearest first.

Run it with ``python examples/tax_lots.py``. A strategy buys 10 shares of the sample stock
every 10 trading days and sells 25 every 60, for ten years. The run is made three times, each
with a :class:`~ibkrfw.portfolio.TaxLotPortfolio` given to the engine
(``Engine(..., portfolio=...)``) that closes lots by another method. The fills, cash and
equity of the three runs are the same; what each sale realises, and whether it is short or
long term, is not (profits before commissions; the lots carry their share of those too).
"""

from __future__ import annotations

import attrs
import pandas as pd

from ibkrfw import Bar, Context, Engine, Strategy
from ibkrfw.data import sample_feed
from ibkrfw.portfolio import LotMethod, TaxLotPortfolio
from ibkrfw.sim import IBKRFixedCommission, SimBroker


@attrs.define
class Accumulate(Strategy):
    """Buy ``buy`` shares every ``buy_every`` bars; sell ``sell`` every ``sell_every``."""

    buy: int = 10
    buy_every: int = 10
    sell: int = 25
    sell_every: int = 60
    _bars: int = attrs.field(default=0, init=False)

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        self._bars += 1
        if self._bars % self.sell_every == 0 and ctx.position(bar.instrument).quantity:
            held = ctx.position(bar.instrument).quantity
            ctx.sell(bar.instrument, min(self.sell, held))
        elif self._bars % self.buy_every == 0:
            ctx.buy(bar.instrument, self.buy)


def run(method: LotMethod) -> tuple[TaxLotPortfolio, float]:
    ledger = TaxLotPortfolio(100_000, method=method)
    broker = SimBroker(100_000, commission=IBKRFixedCommission())
    result = Engine(Accumulate(), sample_feed(["ACME"]), broker, portfolio=ledger).run()
    return ledger, float(result.stats["Final equity"])


def main() -> None:
    rows = {}
    for method in LotMethod:
        ledger, equity = run(method)
        closed = pd.DataFrame([attrs.asdict(c, recurse=False) for c in ledger.closed_lots])
        long_term = [c.long_term for c in ledger.closed_lots]
        realised = float(closed["gross_pnl"].sum())
        unrealised = sum(p.unrealized_pnl for p in ledger.positions.values())
        rows[method.value] = {
            "closed lots": len(closed),
            "realised": realised,
            "of which long term": float(closed.loc[long_term, "gross_pnl"].sum()),
            "unrealised": unrealised,
            "realised + unrealised": realised + unrealised,
            "open lots": len(ledger.lots()),
            "cash": float(ledger.cash),
            "final equity": equity,
        }
    table = pd.DataFrame(rows)
    print(table.round(2).to_string())
    same = table.loc[["realised + unrealised", "cash", "final equity"]].round(6)
    print(f"same profit, cash and equity whatever the method: {same.nunique(axis=1).eq(1).all()}")


if __name__ == "__main__":
    main()
