"""Persistent state: per-calendar sync state, items as fetched, visits as last seen,
findings with first-seen and resolved times, and the outbox of notifications."""

from syncd.store.calendars import CalendarState
from syncd.store.common import locator_hash, utc_start
from syncd.store.db import Store, open_store, resolve_url
from syncd.store.findings import OpenFinding
from syncd.store.outbox import OutboxRow
from syncd.store.subscriptions import GraphSubscriptionRow

__all__ = [
    "CalendarState",
    "GraphSubscriptionRow",
    "OpenFinding",
    "OutboxRow",
    "Store",
    "locator_hash",
    "open_store",
    "resolve_url",
    "utc_start",
]
