"""iCalendar text -> expanded :class:`~syncd.model.Occurrence` objects over a window.

Pure: no I/O, no clock. Owned by the parsing layer; see ``parse_ical``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from .model import Occurrence
from .sources.base import Window


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep one hostile calendar from blinding the daemon to everyone else."""

    max_bytes: int = 20 * 1024 * 1024
    max_property_chars: int = 64 * 1024
    max_components: int = 50_000
    max_occurrences_per_series: int = 2_000
    max_occurrences: int = 200_000


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Problem:
    """An entry that could not be read fully. Shown to the monitor as rule ``unreadable-entry``."""

    uid: str
    summary: str
    message: str


@dataclass(slots=True)
class ParseResult:
    occurrences: list[Occurrence] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def parse_ical(
    data: str | bytes,
    *,
    window: Window,
    tz: ZoneInfo,
    limits: Limits = DEFAULT_LIMITS,
) -> ParseResult:
    """Expand every VEVENT of ``data`` that overlaps ``window``.

    Raises :class:`syncd.errors.InputError` when the text is not iCalendar at all.
    """
    raise NotImplementedError
