"""Operating live: health checks, alerts, daily summaries, the dashboard and metrics."""

from ibkrfw.monitoring.alerts import (
    Alert,
    Alerter,
    Channel,
    Delivery,
    EmailChannel,
    LogChannel,
    WebhookChannel,
    channels_from_config,
    read_secret,
)
from ibkrfw.monitoring.dashboard import Dashboard, prometheus_text
from ibkrfw.monitoring.monitor import IB_NIGHTLY_RESET, Check, Health, LiveMonitor
from ibkrfw.monitoring.summary import DailySummary

__all__ = [
    "IB_NIGHTLY_RESET",
    "Alert",
    "Alerter",
    "Channel",
    "Check",
    "DailySummary",
    "Dashboard",
    "Delivery",
    "EmailChannel",
    "Health",
    "LiveMonitor",
    "LogChannel",
    "WebhookChannel",
    "channels_from_config",
    "prometheus_text",
    "read_secret",
]
