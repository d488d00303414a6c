"""The Interactive Brokers adapter: the only package that imports ``ibapi``.

Install the official client with ``pip install "ibkrfw[ibkr]"`` (ibapi 9.81), or IB's 10.x
client; both are supported by feature detection. :class:`IBKRBroker` and :class:`IBKRDataFeed`
are what an :class:`~ibkrfw.Engine` needs for a paper or live run; they share one
:class:`IBClient` connection. :class:`~ibkrfw.ibkr.download.HistoryDownloader` fills a bar
store from IB's history; :class:`ContractLookup` searches IB's contracts and resolves one.
"""

from ibkrfw.ibkr.broker import IBKRBroker
from ibkrfw.ibkr.chains import OptionChain, option_chains
from ibkrfw.ibkr.client import IBClient, Listener
from ibkrfw.ibkr.config import IBKRConfig
from ibkrfw.ibkr.connection import (
    Action,
    Backoff,
    ConnectionMonitor,
    ConnectionState,
    Farm,
    FarmStatus,
    Transition,
)
from ibkrfw.ibkr.download import DownloadProgress, DownloadReport, HistoryDownloader
from ibkrfw.ibkr.executions import ExecutionBook, ExecutionReport
from ibkrfw.ibkr.feed import BarAggregator, IBKRDataFeed
from ibkrfw.ibkr.history import HistoryChunk, history_chunks, ib_bar_size
from ibkrfw.ibkr.ids import OrderIds
from ibkrfw.ibkr.journal import Journal, JournalOrder
from ibkrfw.ibkr.lookup import (
    ContractCache,
    ContractInfo,
    ContractLookup,
    ContractMatch,
    TradingSession,
    parse_trading_hours,
)
from ibkrfw.ibkr.pacing import HistoryPacer, HistoryRequest, MessageRate
from ibkrfw.ibkr.translate import (
    from_ib_contract,
    from_ib_order,
    to_ib_contract,
    to_ib_order,
)

__all__ = [
    "Action",
    "Backoff",
    "BarAggregator",
    "ConnectionMonitor",
    "ConnectionState",
    "ContractCache",
    "ContractInfo",
    "ContractLookup",
    "ContractMatch",
    "DownloadProgress",
    "DownloadReport",
    "ExecutionBook",
    "ExecutionReport",
    "Farm",
    "FarmStatus",
    "HistoryChunk",
    "HistoryDownloader",
    "HistoryPacer",
    "HistoryRequest",
    "IBClient",
    "IBKRBroker",
    "IBKRConfig",
    "IBKRDataFeed",
    "Journal",
    "JournalOrder",
    "Listener",
    "MessageRate",
    "OptionChain",
    "OrderIds",
    "TradingSession",
    "Transition",
    "from_ib_contract",
    "from_ib_order",
    "history_chunks",
    "ib_bar_size",
    "option_chains",
    "parse_trading_hours",
    "to_ib_contract",
    "to_ib_order",
]
