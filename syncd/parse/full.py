"""The reference path: icalendar parses everything, recurring-ical-events expands.

Around them it adds what a safety service needs: per-entry tolerance (one broken entry
becomes a :class:`Problem`, the rest still count), per-calendar time zones, and the bounds
of :mod:`syncd.parse.guard` and :mod:`syncd.parse.limits`.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import warnings
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import x_wr_timezone
from icalendar.prop import vBroken
from recurring_ical_events import EventAdapter, Series
from recurring_ical_events import Occurrence as RieOccurrence
from recurring_ical_events.util import make_comparable

from syncd.domain.model import Occurrence, Problem, Window, organizer_address
from syncd.errors import InputError
from syncd.parse.entry import Entry
from syncd.parse.guard import Skip, bound_rule, limit_dates
from syncd.parse.limits import Limits, ParseResult, too_many
from syncd.parse.timezones import resolve_tzid

_DT_PROPS = ("DTSTART", "DTEND", "RECURRENCE-ID", "EXDATE", "RDATE")
_RULE_PROPS = ("RRULE", "RDATE", "EXDATE")


def parse_full(
    text: str, window: Window, tz: ZoneInfo, limits: Limits, result: ParseResult
) -> None:
    """The reference path: icalendar parses everything, recurring-ical-events expands."""
    for cal in _parse_calendars(text, result):
        _Expander(cal, window, tz, limits, result).run()


def _parse_calendars(text: str, result: ParseResult) -> list[icalendar.Calendar]:
    try:
        return _from_ical(text)
    except Exception as exc:  # any parser failure is retried once below
        first = exc
    # A VTIMEZONE that dateutil cannot build (empty TZID, odd rules) sinks the whole parse;
    # without the definitions the times fall back to the staff zone, which we say loudly.
    stripped = _strip_vtimezones(text)
    if stripped != text:
        try:
            cals = _from_ical(stripped)
        except Exception:
            pass
        else:
            result.problems.append(
                Problem(
                    "",
                    "",
                    "a time-zone definition in the file is unreadable; "
                    "times that use it are read in the local zone",
                )
            )
            return cals
    raise InputError(f"not an iCalendar file: {type(first).__name__}") from None


def _from_ical(text: str) -> list[icalendar.Calendar]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cals = icalendar.Calendar.from_ical(text, multiple=True)
    out = [c for c in cals if c.name == "VCALENDAR"]
    if not out:
        raise ValueError("no VCALENDAR")
    return out


def _strip_vtimezones(text: str) -> str:
    return re.sub(
        r"^BEGIN:VTIMEZONE\s*$.*?^END:VTIMEZONE\s*$\n?",
        "",
        text,
        flags=re.IGNORECASE | re.MULTILINE | re.DOTALL,
    )


class _Expander:
    """Expands one VCALENDAR into ``result``."""

    def __init__(
        self,
        cal: icalendar.Calendar,
        window: Window,
        tz: ZoneInfo,
        limits: Limits,
        result: ParseResult,
    ) -> None:
        self.cal = cal
        self.tz = tz
        self.limits = limits
        self.result = result
        self.start = window.start.astimezone(tz)
        self.end = window.end.astimezone(tz)
        self._zones: dict[str, tzinfo | None] = {}
        self._vtimezones: dict[str, Any] = {}
        self._truncated = False

    # --- driver ---------------------------------------------------------------------
    def run(self) -> None:
        cal = self._standardise(self.cal)
        groups: dict[str, list[Any]] = {}
        for comp in cal.walk("VTIMEZONE"):
            tzid = str(comp.get("TZID", "")).strip()
            self._vtimezones.setdefault(tzid, comp)
        # VEVENTs live directly in VCALENDAR (RFC 5545 3.6); walking deeper would let a
        # file of nested BEGIN:VEVENTs cost quadratic time.
        for comp in cal.subcomponents:
            if comp.name != "VEVENT":
                continue
            groups.setdefault(_uid(comp), []).append(comp)
            if any(sub.name == "VEVENT" for sub in comp.subcomponents):
                self._problem(_uid(comp), [comp], "entries nested inside this entry were not read")
        for uid, comps in groups.items():
            if self._truncated:
                return
            try:
                for comp in comps:
                    self._prepare(comp)
                if len(comps) == 1 and not _recurs(comps[0]):
                    self._single(uid, comps[0])
                else:
                    self._series(uid, comps)
            except _Stop:
                return
            except Skip as skip:
                self._problem(uid, comps, str(skip))
            except Exception as exc:  # one bad entry must not hide the rest
                self._problem(uid, comps, f"entry could not be read ({type(exc).__name__})")

    def _standardise(self, cal: icalendar.Calendar) -> icalendar.Calendar:
        if "X-WR-TIMEZONE" not in cal:
            return cal
        try:
            standard: icalendar.Calendar = x_wr_timezone.to_standard(cal)
        except Exception:  # unknown X-WR-TIMEZONE: keep the floating times
            self.result.problems.append(
                Problem("", "", "the calendar names an unknown time zone (X-WR-TIMEZONE)")
            )
            return cal
        return standard

    def _problem(self, uid: str, comps: list[Any], message: str) -> None:
        summary = ""
        for comp in comps:
            summary = _text(comp.get("SUMMARY"))
            if summary:
                break
        self.result.problems.append(Problem(uid, summary[:200], message))

    def _emit(self, occ: Occurrence) -> None:
        if len(self.result.occurrences) >= self.limits.max_occurrences:
            self._truncated = True
            self.result.problems.append(too_many(self.limits))
            raise _Stop
        self.result.occurrences.append(occ)

    # --- preparation ------------------------------------------------------------------
    def _prepare(self, comp: Any) -> None:
        """Check the entry is readable and pin every date-time to a real zone."""
        broken = [name for name, _msg in comp.errors if not (name or "").upper().startswith("X-")]
        if any(name in ("DTSTART", "DTEND", "DURATION", "RECURRENCE-ID") for name in broken):
            raise Skip("the start or end time cannot be read")
        if any(name in _RULE_PROPS for name in broken):
            raise Skip("the repetition rule cannot be read")
        if "DTSTART" not in comp:
            raise Skip("the entry has no start time")
        for name in _DT_PROPS:
            values = comp.get(name)
            if values is None:
                continue
            for value in values if isinstance(values, list) else [values]:
                if isinstance(value, vBroken):
                    raise Skip(f"the {name} value cannot be read")
                self._pin(value)
        if None in broken:
            # Lines that are not iCalendar at all (an unfolded description): the entry is
            # still checked, but the monitor learns some of it was lost.
            self._problem(_uid(comp), [comp], "some lines of this entry could not be read")

    def _pin(self, prop: Any) -> None:
        tzid = prop.params.get("TZID") if prop.params else None
        zone = self._zone(str(tzid)) if tzid is not None else None
        items = prop.dts if hasattr(prop, "dts") else [prop]
        for item in items:
            dt = item.dt
            if isinstance(dt, tuple):
                item.dt = tuple(self._pin_one(d, tzid, zone) for d in dt)
            else:
                item.dt = self._pin_one(dt, tzid, zone)

    def _pin_one(self, dt: Any, tzid: Any, zone: tzinfo | None) -> Any:
        if not isinstance(dt, datetime):
            return dt
        if tzid is not None:
            # icalendar keeps the wall time; attach this calendar's own zone, never the
            # process-wide cache entry another file left under the same custom TZID.
            return dt.replace(tzinfo=zone if zone is not None else self.tz)
        if dt.tzinfo is None:
            return dt.replace(tzinfo=self.tz)  # floating: the staff member's own zone
        return dt

    def _zone(self, tzid: str) -> tzinfo | None:
        if tzid in self._zones:
            return self._zones[tzid]
        zone: tzinfo | None = resolve_tzid(tzid)
        if zone is None:
            vtz = self._vtimezones.get(tzid.strip())
            if vtz is not None:
                try:
                    zone = vtz.to_tz(lookup_tzid=False)
                except Exception:  # an unbuildable definition: say so below
                    zone = None
        if zone is None:
            self.result.problems.append(
                Problem(
                    "",
                    "",
                    "an entry uses an unknown time zone; its times are read in the local zone",
                )
            )
        self._zones[tzid] = zone
        return zone

    # --- expansion --------------------------------------------------------------------
    def _single(self, uid: str, comp: Any) -> None:
        # Same span semantics as the series path (recurring-ical-events' adapter) without
        # its per-occurrence component copies: most entries are single.
        adapter = EventAdapter(comp)
        if adapter.is_in_span(self.start, self.end):
            self._emit(
                self._occurrence(
                    uid, comp, adapter.start, adapter.end, None, reversed_=_reversed(adapter)
                )
            )

    def _series(self, uid: str, comps: list[Any]) -> None:
        cores = [c for c in comps if "RECURRENCE-ID" not in c]
        truncated = False
        if cores and "RRULE" in cores[0]:
            truncated = bound_rule(
                cores[0],
                window_start=self.start,
                window_end=self.end,
                tz=self.tz,
                limits=self.limits,
            )
        for comp in comps:
            limit_dates(comp, self.limits)
        cap = self.limits.max_occurrences_per_series
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            series = _Series([_Adapter(c) for c in comps])
            found = list(itertools.islice(series.between(self.start, self.end), cap + 1))
        if len(found) > cap:
            found = found[:cap]
            truncated = True
        for occ in found:
            # The component the occurrence comes from (master or override), without the
            # per-occurrence copy as_component() makes.
            comp = occ.source.component
            rid = comp.get("RECURRENCE-ID")
            self._emit(
                self._occurrence(
                    uid,
                    comp,
                    occ.start,
                    occ.end,
                    rid.dt if rid else occ.start,
                    reversed_=_reversed(occ.source),
                )
            )
        if truncated:
            raise Skip(
                f"repeats more than {cap} times in the checked period; only the first {cap} "
                "are checked"
            )

    def _occurrence(
        self, uid: str, comp: Any, start: Any, end: Any, rid: Any, *, reversed_: bool
    ) -> Occurrence:
        return Entry(
            uid=uid,
            start=start,
            end=end,
            has_end="DTEND" in comp or "DURATION" in comp,
            rid=rid,
            summary=_text(comp.get("SUMMARY")),
            location=_text(comp.get("LOCATION")),
            description=_text(comp.get("DESCRIPTION")),
            categories=_categories(comp),
            status=str(comp.get("STATUS", "")).strip().upper(),
            organizer=_organizer(comp),
            reversed=reversed_,
        ).occurrence(self.tz, self.limits, self.result)


class _Adapter(EventAdapter):  # type: ignore[misc]
    """recurring-ical-events' VEVENT adapter, keeping a public handle on its component."""

    def __init__(self, component: Any) -> None:
        super().__init__(component)
        self.component = component


class _Occurrence(RieOccurrence):  # type: ignore[misc]
    def __init__(self, adapter: _Adapter, start: Any = None, end: Any = None, sequence: int = -1):
        super().__init__(adapter, start, end, sequence)
        self.source = adapter


class _Series(Series):  # type: ignore[misc]
    # recurring-ical-events' documented hook for the occurrence class.
    def occurrence(self, adapter: Any, start: Any = None, end: Any = None) -> _Occurrence:
        return _Occurrence(adapter, start, end, sequence=self.sequence)


class _Stop(Skip):
    """The whole-calendar occurrence limit was reached."""


def _uid(comp: Any) -> str:
    uid = comp.get("UID")
    if uid is not None and str(uid).strip():
        return str(uid).strip()
    # No UID (RFC violation, seen from OWA): derive a stable one so findings keep their key.
    try:
        raw = comp.copy().to_ical()  # properties only, not nested components
    except Exception:  # a component too broken to serialise
        raw = repr(sorted(comp.keys())).encode()
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return f"no-uid-{digest}"


def _reversed(adapter: Any) -> bool:
    """Whether the entry ends before it starts as written (the adapter's span swaps them)."""
    start, end = make_comparable((adapter.raw_start, adapter.raw_end))
    return bool(start > end)


def _recurs(comp: Any) -> bool:
    return any(name in comp for name in (*_RULE_PROPS, "RECURRENCE-ID"))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def _organizer(comp: Any) -> str:
    value = comp.get("ORGANIZER")
    if isinstance(value, list):  # repeated (RFC 5545 allows one): the first, as written
        value = value[0] if value else None
    # An address is text (vCalAddress, or vText/vUri under a VALUE parameter); a value
    # typed as a date or a number is no address.
    return organizer_address(str(value)) if isinstance(value, str) else ""


def _categories(comp: Any) -> tuple[str, ...]:
    values = comp.get("CATEGORIES")
    if values is None:
        return ()
    out: list[str] = []
    for prop in values if isinstance(values, list) else [values]:
        cats = getattr(prop, "cats", None)
        for cat in cats if cats is not None else [prop]:
            out.extend(part.strip() for part in str(cat).split(","))
    return tuple(c for c in out if c)
