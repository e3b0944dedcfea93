"""Visit recognition and the rules with stable ids (public interface; see README).

Pure: no I/O, no clock. The six guidance rules (missing-who, missing/invalid-postcode,
missing-times, missing-return, missing/invalid-contact) always run; configuration can only
widen recognition or add and tighten rules.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from syncd.domain.extract import DEFAULT_PREFIXES, VisitFields, extract, marker_regex
from syncd.domain.model import Finding, Occurrence, Window

DEFAULT_CATEGORY = "Home Visit"

RULE_IDS: tuple[str, ...] = (
    "missing-who",
    "missing-postcode",
    "invalid-postcode",
    "missing-times",
    "missing-return",
    "missing-contact",
    "invalid-contact",
    "missing-purpose",
)
"""Every rule id, in the order findings for one visit are returned."""

MESSAGES: dict[str, str] = {
    "missing-who": "No one named: put the family name or Mosaic number in the title, "
    "or add 'Visiting: ...'.",
    "missing-postcode": "No UK postcode: add 'Postcode: DE4 3LT' to the entry.",
    "invalid-postcode": "The postcode given is not a valid UK postcode: correct it "
    "(format like 'DE4 3LT').",
    "missing-times": "No start and finish time: make it a timed entry that ends after it starts.",
    "missing-return": "Last visit of the day with no return plan: add 'Return: office 16:30' "
    "or 'Return: going straight home'.",
    "missing-contact": "No contact number: add 'Tel:' with the mobile you will carry.",
    "invalid-contact": "The contact number given is not a valid UK number: check the digits.",
    "missing-purpose": "No purpose recorded: add 'Purpose: ...' (statutory, CIN, CP, "
    "assessment, direct work...).",
}
"""Monitor-facing text per rule. Fixed strings: they never echo the entry's content."""


class RulesConfig(BaseModel):
    """The ``[rules]`` table. It may widen recognition and add or tighten rules, but the
    guidance minimum (the six field rules) always runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    visit_categories: tuple[str, ...] = Field(
        default=(),
        description="Extra calendar categories that mark an entry as a home visit, in "
        "addition to 'Home Visit' (compared case-insensitively).",
    )
    visit_prefixes: tuple[str, ...] = Field(
        default=(),
        description="Extra words a summary may begin with to mark a home visit, in addition "
        "to 'Home visit', 'HV' and 'Visit' (whole words, case-insensitive), e.g. 'SV'.",
    )
    require_purpose: bool = Field(
        default=False,
        description="Also run rule 'missing-purpose': each visit must record its purpose "
        "(a 'Purpose:' line or a word such as statutory, CIN, CP, assessment).",
    )
    return_on_every_visit: bool = Field(
        default=False,
        description="Require the return plan (going home, or office with a time) on every "
        "visit, not only on the last visit of the day.",
    )


@dataclass(slots=True)
class CheckResult:
    visits: list[Occurrence] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def _prefixes(config: RulesConfig) -> tuple[str, ...]:
    return DEFAULT_PREFIXES + tuple(config.visit_prefixes)


def _categories(config: RulesConfig) -> frozenset[str]:
    return frozenset(
        c.strip().casefold() for c in (DEFAULT_CATEGORY, *config.visit_categories) if c.strip()
    )


def is_visit(occ: Occurrence, config: RulesConfig) -> bool:
    """Whether ``occ`` is a home visit to check (cancelled occurrences never are)."""
    return _is_visit(occ, _categories(config), _prefixes(config))


def _is_visit(occ: Occurrence, categories: frozenset[str], prefixes: tuple[str, ...]) -> bool:
    return _is_visit_marked(occ, categories, marker_regex(prefixes))


def _is_visit_marked(occ: Occurrence, categories: frozenset[str], marker: re.Pattern[str]) -> bool:
    if occ.cancelled:
        return False
    if occ.categories and any(c.strip().casefold() in categories for c in occ.categories):
        return True
    return marker.match(occ.summary) is not None


def _local_start(occ: Occurrence, tz: ZoneInfo) -> datetime:
    """The start as an aware datetime; an all-day entry starts at local midnight."""
    if isinstance(occ.start, datetime):
        return occ.start if occ.start.tzinfo else occ.start.replace(tzinfo=tz)
    return datetime.combine(occ.start, time(0), tzinfo=tz)


def _in_window(occ: Occurrence, start: datetime, window: Window, tz: ZoneInfo) -> bool:
    if occ.all_day:
        # By local date: an all-day visit today stays in a window that starts at 09:00 today.
        return window.start.astimezone(tz).date() <= occ.start and start < window.end
    return window.start <= start < window.end


def _has_times(occ: Occurrence) -> bool:
    if occ.all_day or occ.end is None or not isinstance(occ.end, datetime):
        return False
    start = occ.start
    end = occ.end
    assert isinstance(start, datetime)
    if (start.tzinfo is None) != (end.tzinfo is None):
        return False
    return end > start


def _last_of_day(
    visits: Sequence[Occurrence], starts: dict[int, datetime], tz: ZoneInfo
) -> set[int]:
    """Ids of the visits that are the last of their worker's local day.

    Last = latest start. All-day visits are candidates only on a day with no timed visit
    (then each of them is, as none is known to come later). Equal latest starts are all last.
    """
    timed: dict[date, list[Occurrence]] = {}
    all_day: dict[date, list[Occurrence]] = {}
    for occ in visits:
        if occ.all_day:
            assert isinstance(occ.start, date)
            all_day.setdefault(occ.start, []).append(occ)
        else:
            timed.setdefault(starts[id(occ)].astimezone(tz).date(), []).append(occ)
    last: set[int] = set()
    for day_visits in timed.values():
        latest = max(starts[id(o)] for o in day_visits)
        last.update(id(o) for o in day_visits if starts[id(o)] == latest)
    for day, day_visits in all_day.items():
        if day not in timed:
            last.update(id(o) for o in day_visits)
    return last


def _rules_for(
    occ: Occurrence, f: VisitFields, *, needs_return: bool, config: RulesConfig
) -> list[str]:
    broken: list[str] = []
    if not f.who:
        broken.append("missing-who")
    if not f.postcodes:
        broken.append("invalid-postcode" if f.invalid_postcode_label else "missing-postcode")
    if not _has_times(occ):
        broken.append("missing-times")
    if needs_return and not (f.going_home or f.office_return):
        broken.append("missing-return")
    if not f.phones:
        broken.append("invalid-contact" if f.invalid_contact_label else "missing-contact")
    if config.require_purpose and not f.purpose:
        broken.append("missing-purpose")
    return broken


def check(
    occurrences: Sequence[Occurrence],
    *,
    calendar: str,
    tz: ZoneInfo,
    window: Window,
    config: RulesConfig,
) -> CheckResult:
    """Recognise the visits among ``occurrences`` that start inside ``window`` and check them.

    The last visit of a day is decided over every visit given, not only those in the
    window, so a window ending mid-day cannot make an earlier visit look like the last.
    """
    categories = _categories(config)
    prefixes = _prefixes(config)
    marker = marker_regex(prefixes)
    all_visits = [o for o in occurrences if _is_visit_marked(o, categories, marker)]
    starts = {id(o): _local_start(o, tz) for o in all_visits}
    visits = sorted(
        (o for o in all_visits if _in_window(o, starts[id(o)], window, tz)),
        key=lambda o: starts[id(o)],
    )
    last = set() if config.return_on_every_visit else _last_of_day(all_visits, starts, tz)
    findings: list[Finding] = []
    for occ in visits:
        fields = extract(occ, prefixes=prefixes, purpose=config.require_purpose)
        needs_return = config.return_on_every_visit or id(occ) in last
        broken = _rules_for(occ, fields, needs_return=needs_return, config=config)
        if not broken:
            continue
        key = occ.key
        for rule in broken:
            findings.append(
                Finding(
                    rule=rule,
                    calendar=calendar,
                    uid=occ.uid,
                    occurrence_key=key,
                    summary=occ.summary,
                    start=occ.start,
                    message=MESSAGES[rule],
                )
            )
    return CheckResult(visits=visits, findings=findings)
