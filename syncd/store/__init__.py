"""Persistent state: per-calendar sync state, items as fetched, visits as last seen,
findings with first-seen and resolved times, and the outbox of notifications."""

from syncd.store.db import (
    CalendarState,
    GraphSubscriptionRow,
    OpenFinding,
    OutboxRow,
    Store,
    locator_hash,
    open_store,
    resolve_url,
    utc_start,
)

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
