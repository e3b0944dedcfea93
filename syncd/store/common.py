"""What the store's aggregates share: the engine they run on and small key helpers."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Engine


class Aggregate:
    """Base of each aggregate's part of :class:`syncd.store.Store`."""

    engine: Engine


def locator_hash(source: str, locator: str) -> str:
    return hashlib.sha256(f"{source}\0{locator}".encode()).hexdigest()


def utc_start(start: datetime | date) -> datetime:
    """A UTC instant to order and index visits by."""
    if isinstance(start, datetime):
        return start.astimezone(UTC)
    # All-day entries are stored at UTC midnight of their date: only used for ordering.
    return datetime.combine(start, time(0), tzinfo=UTC)


def chunks(seq: Sequence[Any], n: int = 500) -> Iterable[Sequence[Any]]:
    """Slices small enough for an IN (...) list on every backend."""
    for i in range(0, len(seq), n):
        yield seq[i : i + n]
