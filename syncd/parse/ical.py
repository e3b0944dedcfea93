"""iCalendar text -> expanded :class:`~syncd.domain.model.Occurrence` objects over a window.

Pure: no I/O, no clock. Parsing is icalendar's, expansion is recurring-ical-events';
this module adds what a safety service needs around them: per-entry tolerance (one broken
entry becomes a :class:`Problem`, the rest still count), per-calendar time zones, and hard
bounds so one hostile file cannot stall the daemon.
"""

from __future__ import annotations

import calendar
import hashlib
import itertools
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import x_wr_timezone
from dateutil.rrule import rrule, rrulestr
from icalendar.prop import vBroken, vRecur
from recurring_ical_events import EventAdapter, Series
from recurring_ical_events import Occurrence as RieOccurrence
from recurring_ical_events.util import time_span_contains_event

from syncd.domain.model import Occurrence, Problem, Window, organizer_address
from syncd.errors import InputError
from syncd.parse.fast import Simple, scan
from syncd.parse.series import Expansion, Unsupported, expand
from syncd.parse.timezones import resolve_tzid


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


_DT_PROPS = ("DTSTART", "DTEND", "RECURRENCE-ID", "EXDATE", "RDATE")
_RULE_PROPS = ("RRULE", "RDATE", "EXDATE")
_BEGIN = re.compile(r"^[ \t]*BEGIN[ \t]*:", re.IGNORECASE | re.MULTILINE)
# Rules are guarded up to the window end plus this much, so a THISANDFUTURE move or a
# long entry that started just after still lands; beyond it nothing can overlap.
_RULE_MARGIN = timedelta(days=7)


def parse_ical(
    data: str | bytes,
    *,
    window: Window,
    tz: ZoneInfo,
    limits: Limits = DEFAULT_LIMITS,
) -> ParseResult:
    """Expand every VEVENT of ``data`` that overlaps ``window``.

    Raises :class:`syncd.errors.InputError` when the text is not iCalendar at all, or is
    larger than ``limits`` allow as a whole. Anything wrong with one entry is reported as
    a :class:`Problem` instead, and the rest of the calendar is still read.
    """
    text = decode(data, limits)
    head = text.lstrip()[:15].upper()
    if not head.startswith("BEGIN:VCALENDAR"):
        raise InputError("not an iCalendar file: it does not start with BEGIN:VCALENDAR")
    # Every component costs at least "BEGIN:X\nEND:X\n"; short texts cannot exceed the limit.
    n_components = len(_BEGIN.findall(text)) if len(text) > 12 * limits.max_components else 0
    if n_components > limits.max_components:
        raise InputError(
            f"too many entries: {n_components} components, the limit is {limits.max_components}"
        )
    result = ParseResult()
    fast = scan(text)
    rest: str | None = text
    if fast is not None:
        declined: list[list[str]] = []
        rest = None
        if _fast_lane(fast.simple, window, tz, limits, result, declined):
            rest = fast.rest_with(declined)
    if rest is not None:
        _parse_full(rest, window, tz, limits, result)
    result.occurrences.sort(key=lambda o: _sort_key(o.start, tz))
    return result


def _parse_full(
    text: str, window: Window, tz: ZoneInfo, limits: Limits, result: ParseResult
) -> None:
    """The reference path: icalendar parses everything, recurring-ical-events expands."""
    for cal in _parse_calendars(text, result):
        _Expander(cal, window, tz, limits, result).run()


def decode(data: str | bytes, limits: Limits = DEFAULT_LIMITS) -> str:
    """Text of an iCalendar payload: BOMs honoured, then UTF-8, then Windows-1252/Latin-1."""
    if len(data) > limits.max_bytes:
        raise InputError(f"file too large: {len(data)} bytes, the limit is {limits.max_bytes}")
    if isinstance(data, str):
        text = data
    elif data.startswith(b"\xef\xbb\xbf"):
        text = data[3:].decode("utf-8", errors="replace")
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16", errors="replace")
    elif data.startswith(b"B\x00E\x00"):
        text = data.decode("utf-16-le", errors="replace")
    elif data.startswith(b"\x00B\x00E"):
        text = data.decode("utf-16-be", errors="replace")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            # Old Outlook exports are Windows-1252; Latin-1 never fails, as a last resort.
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:
                text = data.decode("latin-1")
    text = text.lstrip("\ufeff")
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text


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


class _Skip(Exception):
    """An entry that cannot be expanded; its message is the Problem text."""


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
            except _Skip as skip:
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
            self.result.problems.append(_too_many(self.limits))
            raise _Stop
        self.result.occurrences.append(occ)

    # --- preparation ------------------------------------------------------------------
    def _prepare(self, comp: Any) -> None:
        """Check the entry is readable and pin every date-time to a real zone."""
        broken = [name for name, _msg in comp.errors if not (name or "").upper().startswith("X-")]
        if any(name in ("DTSTART", "DTEND", "DURATION", "RECURRENCE-ID") for name in broken):
            raise _Skip("the start or end time cannot be read")
        if any(name in _RULE_PROPS for name in broken):
            raise _Skip("the repetition rule cannot be read")
        if "DTSTART" not in comp:
            raise _Skip("the entry has no start time")
        for name in _DT_PROPS:
            values = comp.get(name)
            if values is None:
                continue
            for value in values if isinstance(values, list) else [values]:
                if isinstance(value, vBroken):
                    raise _Skip(f"the {name} value cannot be read")
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
            self._emit(self._occurrence(uid, comp, adapter.start, adapter.end, None))

    def _series(self, uid: str, comps: list[Any]) -> None:
        cores = [c for c in comps if "RECURRENCE-ID" not in c]
        truncated = False
        if cores and "RRULE" in cores[0]:
            truncated = self._guard(cores[0])
        for comp in comps:
            _limit_dates(comp, self.limits)
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
                self._occurrence(uid, comp, occ.start, occ.end, rid.dt if rid else occ.start)
            )
        if truncated:
            raise _Skip(
                f"repeats more than {cap} times in the checked period; only the first {cap} "
                "are checked"
            )

    def _guard(self, core: Any) -> bool:
        """Bound the repetition rule before recurring-ical-events expands it.

        dateutil builds whole lists between two dates and walks from DTSTART, so a
        secondly rule would take minutes. We walk it lazily here, counting, then write an
        UNTIL into the entry that stops the real expansion where it must stop anyway.
        Returns whether the series was cut short.
        """
        start = core["DTSTART"].dt
        zone: tzinfo = (
            start.tzinfo if isinstance(start, datetime) and start.tzinfo is not None else self.tz
        )
        naive_start = _naive(start, zone)
        first = _naive(self.start - _duration(core), zone)
        stop = _naive(self.end + _RULE_MARGIN, zone)
        rules = core.get("RRULE")
        rules = rules if isinstance(rules, list) else [rules]
        cut: datetime | None = None
        for rule in rules:
            _check_shape(rule)
            until = _rule_until(rule, zone)
            text = ";".join(
                f"{k}={v}"
                for k, v in (
                    part.split("=", 1) for part in rule.to_ical().decode().split(";") if "=" in part
                )
                if k.upper() != "UNTIL"
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    parsed = rrulestr(text, dtstart=naive_start)
                    if not isinstance(parsed, rrule):
                        raise _Skip("the repetition rule cannot be read")
                    drule = parsed.replace(until=min(stop, until) if until else stop)
                except (ValueError, TypeError) as exc:
                    raise _Skip("the repetition rule cannot be read") from exc
                cut = _min(cut, self._walk(drule, first))
        if cut is None:
            cut = stop
        truncated = cut < stop
        new_until: Any
        if isinstance(start, datetime):
            new_until = (
                (cut - timedelta(seconds=1)).replace(tzinfo=zone).astimezone(ZoneInfo("UTC"))
            )
        else:
            new_until = (cut - timedelta(seconds=1)).date()
        replaced = []
        for rule in rules:
            fresh = vRecur(rule)
            old = _rule_until(rule, zone)
            if old is None or old > cut - timedelta(seconds=1):
                fresh["UNTIL"] = [new_until]
            replaced.append(fresh)
        core["RRULE"] = replaced if len(replaced) > 1 else replaced[0]
        return truncated

    def _walk(self, drule: Iterable[datetime], first: datetime) -> datetime | None:
        """The first start the expansion must not reach, if the rule is too dense."""
        before = 0
        inside = 0
        for dt in drule:
            if dt < first:
                before += 1
                if before > self.limits.max_rule_steps:
                    raise _Skip(
                        f"repeats more than {self.limits.max_rule_steps} times before the "
                        "checked period; not checked"
                    )
                continue
            inside += 1
            if inside > self.limits.max_occurrences_per_series:
                return dt
        return None

    def _occurrence(self, uid: str, comp: Any, start: Any, end: Any, rid: Any) -> Occurrence:
        return _Entry(
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
        ).occurrence(self.tz, self.limits, self.result)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One occurrence's fields, as either lane read them; turned into an Occurrence."""

    uid: str
    start: Any
    end: Any
    has_end: bool
    rid: Any
    summary: str
    location: str
    description: str
    categories: tuple[str, ...]
    status: str
    organizer: str

    def occurrence(self, tz: ZoneInfo, limits: Limits, result: ParseResult) -> Occurrence:
        start, end = self.start, self.end if self.has_end else None
        if isinstance(start, datetime):
            start = start.astimezone(tz)
            if isinstance(end, datetime):
                end = end.astimezone(tz)
        rid_text = ""
        rid = self.rid
        if isinstance(rid, datetime) and not isinstance(start, datetime):
            rid_text = rid.date().isoformat()  # Exchange writes all-day ids as midnight
        elif isinstance(rid, datetime):
            rid_text = rid.astimezone(tz).isoformat()
        elif rid is not None:
            rid_text = rid.isoformat()
        return Occurrence(
            uid=self.uid,
            start=start,
            end=end,
            summary=self._cap("SUMMARY", self.summary, limits, result),
            location=self._cap("LOCATION", self.location, limits, result),
            description=self._cap("DESCRIPTION", self.description, limits, result),
            categories=self.categories,
            cancelled=self.status == "CANCELLED",
            recurrence_id=rid_text,
            organizer=self.organizer,
        )

    def _cap(self, name: str, value: str, limits: Limits, result: ParseResult) -> str:
        cap = limits.max_property_chars
        if len(value) <= cap:
            return value
        result.problems.append(
            Problem(
                self.uid,
                self.summary[:200],
                f"{name} is longer than {cap} characters; only the start is checked",
            )
        )
        return value[:cap]


def _fast_lane(
    entries: list[Simple],
    window: Window,
    tz: ZoneInfo,
    limits: Limits,
    result: ParseResult,
    declined: list[list[str]],
) -> bool:
    """Emit the plain entries; False once the whole-calendar limit is reached.

    A series this lane cannot expand exactly as the full path would has its lines added
    to ``declined``, for the full path.
    """
    span_start, span_end = window.start.astimezone(tz), window.end.astimezone(tz)
    for e in entries:
        span = _simple_span(e, tz)
        if e.rule is not None:
            try:
                expansion = _expand_simple(e, span, span_start, span_end, tz, limits)
            except Exception:  # Unsupported, or anything unforeseen: the full path decides
                declined.append(e.lines)
                continue
            for occ_start, occ_end in expansion.spans:
                if not _fast_emit(e, occ_start, occ_end, occ_start, tz, limits, result):
                    return False
            if expansion.problem:
                result.problems.append(Problem(e.uid, e.summary[:200], expansion.problem))
            continue
        # Aware date-times need none of make_comparable's conversions (most entries).
        timed = isinstance(span[0], datetime) and isinstance(span[1], datetime)
        if not time_span_contains_event(span_start, span_end, *span, comparable=timed):
            continue
        if not _fast_emit(e, span[0], span[1], None, tz, limits, result):
            return False
    return True


def _simple_span(e: Simple, tz: ZoneInfo) -> tuple[Any, Any]:
    start = _pin_simple(e.start, e.start_tzid, tz)
    end = _pin_simple(e.end, e.end_tzid, tz) if e.end is not None else None
    # recurring-ical-events' span: no end means the start (timed) or one day (all-day),
    # and an end before the start is swapped.
    if end is None:
        return (start, start + timedelta(days=1) if not isinstance(start, datetime) else start)
    return (start, end) if not start > end else (end, start)


def _expand_simple(
    e: Simple,
    span: tuple[Any, Any],
    span_start: datetime,
    span_end: datetime,
    tz: ZoneInfo,
    limits: Limits,
) -> Expansion:
    """The fast lane's expansion of a series; raises when the full path must take it."""
    if e.rule is None:
        raise Unsupported
    return expand(
        e.rule,
        *span,
        [_pin_simple(value, tzid, tz) for value, tzid in e.exdates],
        span_start=span_start,
        span_end=span_end,
        tz=tz,
        max_per_series=limits.max_occurrences_per_series,
        max_rule_steps=limits.max_rule_steps,
    )


def _fast_emit(
    e: Simple, start: Any, end: Any, rid: Any, tz: ZoneInfo, limits: Limits, result: ParseResult
) -> bool:
    if len(result.occurrences) >= limits.max_occurrences:
        result.problems.append(_too_many(limits))
        return False
    entry = _Entry(
        uid=e.uid,
        start=start,
        end=end,
        has_end=e.has_end,
        rid=rid,
        summary=e.summary,
        location=e.location,
        description=e.description,
        categories=e.categories,
        status=e.status,
        organizer=e.organizer,
    )
    result.occurrences.append(entry.occurrence(tz, limits, result))
    return True


def _pin_simple(value: date | datetime, tzid: str | None, tz: ZoneInfo) -> date | datetime:
    if not isinstance(value, datetime):
        return value
    if tzid is not None:
        return value.replace(tzinfo=resolve_tzid(tzid))
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


def _too_many(limits: Limits) -> Problem:
    return Problem(
        "",
        "",
        f"more than {limits.max_occurrences} entries in the checked period; "
        "the rest were not checked",
    )


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


class _Stop(_Skip):
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


def _duration(comp: Any) -> timedelta:
    try:
        adapter = EventAdapter(comp)
        span = adapter.end - adapter.start
    except Exception:  # the expansion itself reports a bad span
        return timedelta(0)
    return span if isinstance(span, timedelta) else timedelta(0)


def _limit_dates(comp: Any, limits: Limits) -> None:
    count = 0
    for name in ("RDATE", "EXDATE"):
        values = comp.get(name)
        for value in values if isinstance(values, list) else [values] if values else []:
            count += len(getattr(value, "dts", [value]))
    if count > limits.max_occurrences_per_series:
        raise _Skip(f"lists more than {limits.max_occurrences_per_series} extra or removed dates")


def _naive(value: date | datetime, zone: tzinfo) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(zone)
        return value.replace(tzinfo=None)
    return datetime(value.year, value.month, value.day)


def _rule_until(rule: Any, zone: tzinfo) -> datetime | None:
    values = rule.get("UNTIL")
    if not values:
        return None
    until = values[0]
    if isinstance(until, datetime):
        return _naive(until, zone)
    if isinstance(until, date):
        return datetime(until.year, until.month, until.day, 23, 59, 59)
    return None


_SUB_DAILY = {"SECONDLY", "MINUTELY", "HOURLY"}
_DAY_FILTERS = ("BYMONTH", "BYMONTHDAY", "BYYEARDAY")
_WEEKDAYS = {"MO": 0, "TU": 1, "WE": 2, "TH": 3, "FR": 4, "SA": 5, "SU": 6}


def _check_shape(rule: Any) -> None:
    """Refuse rule shapes that dateutil walks period by period without ever yielding.

    dateutil only looks at UNTIL when it yields, so a rule whose filters never match
    (the 31st of February, an hourly rule with BYSETPOS=2) iterates to the year 9999.
    """
    freq = str((rule.get("FREQ") or [""])[0]).upper()
    by_parts = [k for k in rule if str(k).upper().startswith("BY")]
    if freq in _SUB_DAILY and by_parts:
        raise _Skip("repeats more often than daily with extra conditions; not checked")
    if freq == "DAILY" and "BYSETPOS" in rule:
        raise _Skip("the repetition rule is not supported; not checked")
    if freq != "YEARLY" and any(k in rule for k in _DAY_FILTERS):
        key = tuple(
            tuple(sorted(str(v) for v in rule.get(k, []))) for k in (*_DAY_FILTERS, "BYDAY")
        )
        if not _satisfiable(key):
            raise _Skip("the repetition rule never matches a day; not checked")


@lru_cache(maxsize=256)
def _satisfiable(key: tuple[tuple[str, ...], ...]) -> bool:
    months, monthdays, yeardays, days = key
    month_set = {int(m) for m in months}
    monthday_set = {int(d) for d in monthdays}
    yearday_set = {int(d) for d in yeardays}
    weekday_set = {_WEEKDAYS[d[-2:].upper()] for d in days if d[-2:].upper() in _WEEKDAYS}
    day = date(2000, 1, 1)
    # The Gregorian calendar repeats every 400 years: no match in them means never.
    for _ in range(146_097):
        if (not month_set or day.month in month_set) and (
            not weekday_set or day.weekday() in weekday_set
        ):
            dim = calendar.monthrange(day.year, day.month)[1]
            diy = 366 if calendar.isleap(day.year) else 365
            doy = day.timetuple().tm_yday
            if (
                not monthday_set or day.day in monthday_set or day.day - dim - 1 in monthday_set
            ) and (not yearday_set or doy in yearday_set or doy - diy - 1 in yearday_set):
                return True
        day += timedelta(days=1)
    return False


def _min(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _sort_key(value: date | datetime, tz: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day, tzinfo=tz)


__all__ = ["DEFAULT_LIMITS", "Limits", "ParseResult", "Problem", "decode", "parse_ical"]
