"""The bounds one calendar is read within, and what reading it gives back.

A hostile file must not stall the daemon for everyone else: every limit here is checked by
the decoder, the fast lane or the full path before it can cost much.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from syncd.domain.model import Occurrence, Problem


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep one hostile calendar from blinding the daemon to everyone else."""

    max_bytes: int = 20 * 1024 * 1024
    max_property_chars: int = 64 * 1024
    max_components: int = 50_000
    max_occurrences_per_series: int = 2_000
    max_occurrences: int = 200_000
    max_rule_steps: int = 200_000
    """Repetitions a rule may produce before the window (a minutely rule from 1990)."""


DEFAULT_LIMITS = Limits()


@dataclass(slots=True)
class ParseResult:
    occurrences: list[Occurrence] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def too_many(limits: Limits) -> Problem:
    """The Problem reported when the whole-calendar occurrence limit is reached."""
    return Problem(
        "",
        "",
        f"more than {limits.max_occurrences} entries in the checked period; "
        "the rest were not checked",
    )
