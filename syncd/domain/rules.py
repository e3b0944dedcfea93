"""Visit recognition and the rules with stable ids (public interface; see README).

Pure: no I/O, no clock. The six guidance rules (missing-who, missing/invalid-postcode,
missing-times, missing-return, missing/invalid-contact) always run; configuration can only
widen recognition or add and tighten rules. Each rule is one entry of :data:`RULES` (id,
title, message, check), in the order of the README's rule table (tests/test_rule_table.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from types import MappingProxyType
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from syncd.domain.extract import DEFAULT_PREFIXES, VisitFields, extract, marker_regex
from syncd.domain.model import Finding, Occurrence, Window

DEFAULT_CATEGORY = "Home Visit"


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


# --- the rule table (README "Rule ids", in that order) ---------------------------------------


@dataclass(frozen=True, slots=True)
class Visit:
    """What a rule's check looks at: one visit, what its text says, and its day's context."""

    occ: Occurrence
    fields: VisitFields
    needs_return: bool
    """It is the last visit of its worker's day, or config asks the return plan of every visit."""
    config: RulesConfig


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: its stable id, the short label emails use, the monitor-facing message and
    the check that fires it. Messages are fixed strings: they never echo the entry."""

    id: str
    title: str
    message: str
    check: Callable[[Visit], bool] | None
    """True when the visit breaks the rule. None for a rule the parser reports instead
    (``unreadable-entry``: its finding carries the parser's own message)."""


def _no_who(v: Visit) -> bool:
    return not v.fields.who


# Missing and invalid are exclusive: for one field syncd reports one or the other.
def _no_postcode(v: Visit) -> bool:
    return not v.fields.postcodes and not v.fields.invalid_postcode_label


def _bad_postcode(v: Visit) -> bool:
    return not v.fields.postcodes and v.fields.invalid_postcode_label


def _no_times(v: Visit) -> bool:
    return not _has_times(v.occ)


def _no_return(v: Visit) -> bool:
    return v.needs_return and not (v.fields.going_home or v.fields.office_return)


def _no_contact(v: Visit) -> bool:
    return not v.fields.phones and not v.fields.invalid_contact_label


def _bad_contact(v: Visit) -> bool:
    return not v.fields.phones and v.fields.invalid_contact_label


def _no_purpose(v: Visit) -> bool:
    return v.config.require_purpose and not v.fields.purpose


UNREADABLE = "unreadable-entry"

RULES: Mapping[str, Rule] = MappingProxyType(
    {
        r.id: r
        for r in (
            Rule(
                "missing-who",
                "who is visited",
                "No one named: put the family name or Mosaic number in the title, "
                "or add 'Visiting: ...'.",
                _no_who,
            ),
            Rule(
                "missing-postcode",
                "postcode",
                "No UK postcode: add the postcode of the address you are visiting "
                "(a line 'Postcode: ' followed by it).",
                _no_postcode,
            ),
            Rule(
                "invalid-postcode",
                "postcode (not valid)",
                "The postcode given is not a valid UK postcode: check it against the "
                "address it belongs to.",
                _bad_postcode,
            ),
            Rule(
                "missing-times",
                "start and finish times",
                "No start and finish time: make it a timed entry that ends after it starts.",
                _no_times,
            ),
            Rule(
                "missing-return",
                "return time or 'going home'",
                "Last visit of the day with no return plan: add 'Return: office' and "
                "the time back, or 'Return: going home'.",
                _no_return,
            ),
            Rule(
                "missing-contact",
                "contact number",
                "No contact number: add 'Tel:' with the mobile you will carry.",
                _no_contact,
            ),
            Rule(
                "invalid-contact",
                "contact number (not valid)",
                "The contact number given is not a valid UK number: check the digits.",
                _bad_contact,
            ),
            Rule(
                "missing-purpose",
                "purpose of visit",
                "No purpose recorded: add 'Purpose: ...' (statutory, CIN, CP, "
                "assessment, direct work...).",
                _no_purpose,
            ),
            Rule(
                UNREADABLE,
                "entry could not be read",
                "This entry could not be read, so it was not checked: correct it in the calendar.",
                None,
            ),
        )
    }
)
"""Every rule, in the README's order (the order findings for one visit are returned)."""

_CHECKED = tuple(r for r in RULES.values() if r.check is not None)

RULE_IDS: tuple[str, ...] = tuple(r.id for r in _CHECKED)
"""The ids :func:`check` can return, in the order findings for one visit are returned."""

MESSAGES: Mapping[str, str] = MappingProxyType({r.id: r.message for r in _CHECKED})
"""Monitor-facing text per rule :func:`check` can return."""


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
        seen = Visit(occ, fields, needs_return=needs_return, config=config)
        for rule in _CHECKED:
            if rule.check is not None and rule.check(seen):
                findings.append(
                    Finding(
                        rule=rule.id,
                        calendar=calendar,
                        uid=occ.uid,
                        occurrence_key=occ.key,
                        summary=occ.summary,
                        start=occ.start,
                        message=rule.message,
                    )
                )
    return CheckResult(visits=visits, findings=findings)
