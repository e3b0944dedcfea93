"""Visit recognition and the rules with stable ids (public interface; see README).

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from .model import Finding, Occurrence
from .sources.base import Window


class RulesConfig(BaseModel):
    """The ``[rules]`` table. It may widen recognition and add or tighten rules, but the
    guidance minimum (the six field rules) always runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(slots=True)
class CheckResult:
    visits: list[Occurrence] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def check(
    occurrences: Sequence[Occurrence],
    *,
    calendar: str,
    tz: ZoneInfo,
    window: Window,
    config: RulesConfig,
) -> CheckResult:
    """Recognise the visits among ``occurrences`` that start inside ``window`` and check them."""
    raise NotImplementedError
