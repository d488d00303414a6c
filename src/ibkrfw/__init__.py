"""ibkrfw: a typed framework for algorithmic trading on Interactive Brokers.

One :class:`Strategy` runs in a backtest (:class:`~ibkrfw.sim.SimBroker` on historical data) or
live, handed to the same :class:`Engine`. Importing this package loads neither ``ibapi`` nor
``matplotlib``.
"""

from ibkrfw._version import __version__
from ibkrfw.core.clock import Clock, LiveClock, SimClock
from ibkrfw.core.history import BarArrays, History
from ibkrfw.engine.engine import Engine
from ibkrfw.engine.result import RunResult
from ibkrfw.engine.sleeves import Sleeve
from ibkrfw.errors import (
    AmbiguousContractError,
    BrokerError,
    ConfigError,
    ContractError,
    ContractNotFoundError,
    DataError,
    EngineError,
    IBKRFWError,
    OrderError,
    RequestError,
)
from ibkrfw.model.algos import Adaptive, Algo, ArrivalPrice, Twap, Vwap
from ibkrfw.model.book import (
    BookLevel,
    BookSide,
    BookSnapshot,
    BookWalk,
    DepthBook,
    DepthOperation,
    DepthReceived,
    DepthUpdate,
)
from ibkrfw.model.data import Bar, OptionGreeks, Quote, Tick
from ibkrfw.model.events import (
    BarReceived,
    CashAdjusted,
    ConnectionChanged,
    DataProblem,
    Event,
    FutureSettled,
    GreeksReceived,
    OptionSettled,
    OrderAccepted,
    OrderCancelled,
    OrderCancelRejected,
    OrderDenied,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderModified,
    OrderModifyRejected,
    OrderRejected,
    OrderResized,
    OrderSubmitted,
    ProtectionFailed,
    QuoteReceived,
    Reconciled,
    RiskWarning,
    TickReceived,
    TimerFired,
    TradingHalted,
)
from ibkrfw.model.fills import Fill, Position
from ibkrfw.model.instruments import AssetClass, Forex, Future, Instrument, Option, Stock
from ibkrfw.model.orders import Order, OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from ibkrfw.portfolio.fx import FxRates
from ibkrfw.portfolio.portfolio import Portfolio, PortfolioView, Trade
from ibkrfw.ports import Broker, DataFeed
from ibkrfw.risk.rule import RiskDecision, RiskRule
from ibkrfw.strategy import Context, Strategy

__all__ = [
    "Adaptive",
    "Algo",
    "AmbiguousContractError",
    "ArrivalPrice",
    "AssetClass",
    "Bar",
    "BarArrays",
    "BarReceived",
    "BookLevel",
    "BookSide",
    "BookSnapshot",
    "BookWalk",
    "Broker",
    "BrokerError",
    "CashAdjusted",
    "Clock",
    "ConfigError",
    "ConnectionChanged",
    "Context",
    "ContractError",
    "ContractNotFoundError",
    "DataError",
    "DataFeed",
    "DataProblem",
    "DepthBook",
    "DepthOperation",
    "DepthReceived",
    "DepthUpdate",
    "Engine",
    "EngineError",
    "Event",
    "Fill",
    "Forex",
    "Future",
    "FutureSettled",
    "FxRates",
    "GreeksReceived",
    "History",
    "IBKRFWError",
    "Instrument",
    "LiveClock",
    "Option",
    "OptionGreeks",
    "OptionSettled",
    "Order",
    "OrderAccepted",
    "OrderCancelRejected",
    "OrderCancelled",
    "OrderDenied",
    "OrderError",
    "OrderEvent",
    "OrderExpired",
    "OrderFilled",
    "OrderModified",
    "OrderModifyRejected",
    "OrderRejected",
    "OrderRequest",
    "OrderResized",
    "OrderStatus",
    "OrderSubmitted",
    "OrderType",
    "Portfolio",
    "PortfolioView",
    "Position",
    "ProtectionFailed",
    "Quote",
    "QuoteReceived",
    "Reconciled",
    "RequestError",
    "RiskDecision",
    "RiskRule",
    "RiskWarning",
    "RunResult",
    "Side",
    "SimClock",
    "Sleeve",
    "Stock",
    "Strategy",
    "Tick",
    "TickReceived",
    "TimeInForce",
    "TimerFired",
    "Trade",
    "TradingHalted",
    "Twap",
    "Vwap",
    "__version__",
]
