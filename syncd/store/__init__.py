"""Persistent state: per-calendar sync state, items as fetched, visits as last seen,
findings with first-seen and resolved times, and the outbox of notifications."""

from syncd.store.db import CalendarState, OpenFinding, OutboxRow, Store, open_store

__all__ = ["CalendarState", "OpenFinding", "OutboxRow", "Store", "open_store"]
