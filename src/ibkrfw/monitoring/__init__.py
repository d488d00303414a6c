"""Operating live: alerts (and, as they land, health checks, the dashboard, daily summaries)."""

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

__all__ = [
    "Alert",
    "Alerter",
    "Channel",
    "Delivery",
    "EmailChannel",
    "LogChannel",
    "WebhookChannel",
    "channels_from_config",
    "read_secret",
]
