"""Everything the engine tells people, as typed events.

Each event type has a stable ``kind`` (also the outbox row's kind column) and is stored as
versioned JSON by :func:`to_json`, read back by :func:`from_json`. Version 1 is
``{"v": 1, "kind": ..., <fields>}``; version 0 is what syncd wrote before events were typed:
the same field names, no ``"v"`` and no ``"kind"`` (the row's kind column says which).

Times are aware ``datetime`` (in the teams' zone, so emails show local wall-clock time) or a
``date`` for an all-day entry; in JSON they are ISO 8601 text with the UTC offset.
Pure data: no I/O, no clock. Staff names and entry summaries are personal data: never log
an event.
"""

from __future__ import annotations

import json
import types
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from datetime import date, datetime
from typing import Any, ClassVar, Union, get_args, get_origin, get_type_hints

VERSION = 1


@dataclass(frozen=True, slots=True)
class NewFinding:
    """A visit entry broke a rule (opened once until it is fixed, removed or past)."""

    kind: ClassVar[str] = "finding"
    staff_id: str
    staff_name: str
    rule: str
    summary: str
    start: datetime | date
    message: str
    contact: str = ""  # the worker's phone, or their email if no phone: for the monitor
    started: bool = False  # the visit had begun when the finding was made


@dataclass(frozen=True, slots=True)
class Nudge:
    """The same finding, told to the worker whose calendar it is."""

    kind: ClassVar[str] = "nudge"
    staff_id: str
    staff_name: str
    rule: str
    summary: str
    start: datetime | date
    message: str


@dataclass(frozen=True, slots=True)
class Fixed:
    """An open finding whose visit entry now passes the rule."""

    kind: ClassVar[str] = "fixed"
    staff_id: str
    staff_name: str
    rule: str
    summary: str
    start: datetime | date


@dataclass(frozen=True, slots=True)
class Blind:
    """A calendar cannot be read: its visits are not being tracked."""

    kind: ClassVar[str] = "blind"
    staff_id: str
    staff_name: str
    since: datetime
    error: str


@dataclass(frozen=True, slots=True)
class Recovered:
    """A blind calendar can be read again."""

    kind: ClassVar[str] = "recovered"
    staff_id: str
    staff_name: str
    since: datetime  # when it went blind


@dataclass(frozen=True, slots=True)
class Emptied:
    """A calendar suddenly returned no entries; its previous entries are held."""

    kind: ClassVar[str] = "emptied"
    staff_id: str
    staff_name: str
    since: datetime


@dataclass(frozen=True, slots=True)
class EmptyAccepted:
    """A calendar stayed empty for the grace period; its emptiness is accepted."""

    kind: ClassVar[str] = "empty-accepted"
    staff_id: str
    staff_name: str
    grace_minutes: int


@dataclass(frozen=True, slots=True)
class Refilled:
    """A calendar that read as empty has entries again."""

    kind: ClassVar[str] = "refilled"
    staff_id: str
    staff_name: str
    since: datetime  # when it first read as empty


@dataclass(frozen=True, slots=True)
class ReportLine:
    """One open finding in a morning report."""

    staff_id: str
    staff_name: str
    rule: str
    summary: str
    start: datetime | date
    message: str
    contact: str = ""
    started: bool = False  # the visit had begun when the report was made


@dataclass(frozen=True, slots=True)
class ReportBlind:
    """One calendar not being tracked, in a morning report."""

    staff_name: str
    since: datetime


@dataclass(frozen=True, slots=True)
class ReportNotRead:
    """One calendar that is not blind but whose entries were not read either: never read
    yet, or held after it suddenly read as empty."""

    staff_name: str
    reason: str


@dataclass(frozen=True, slots=True)
class MorningReport:
    """A team's incomplete entries for today and tomorrow and its blind calendars."""

    kind: ClassVar[str] = "morning"
    day: date
    findings: tuple[ReportLine, ...]
    blind: tuple[ReportBlind, ...]
    visits: int
    calendars: int = 0  # the team's calendars; 0 in reports written before it was kept
    not_read: tuple[ReportNotRead, ...] = ()


Event = (
    NewFinding
    | Nudge
    | Fixed
    | Blind
    | Recovered
    | Emptied
    | EmptyAccepted
    | Refilled
    | MorningReport
)
EVENT_TYPES: tuple[type[Event], ...] = get_args(Event)
KINDS: Mapping[str, type[Event]] = {cls.kind: cls for cls in EVENT_TYPES}


@dataclass(frozen=True, slots=True)
class Notice:
    """An event addressed: to the team's monitors (``recipient`` None) or to one person;
    ``due`` holds it back until then (a new finding settling), None for at once."""

    team: str
    event: Event
    recipient: str | None = None
    due: datetime | None = None


def parse_when(text: str) -> datetime | date:
    """ISO text of a timed moment (with offset) or of a date, as the store keeps them."""
    return datetime.fromisoformat(text) if "T" in text else date.fromisoformat(text)


def to_json(event: Event) -> str:
    """The event as version-1 JSON."""
    body = {"v": VERSION, "kind": event.kind} | _encode(event)
    return json.dumps(body, sort_keys=True, ensure_ascii=False)


def from_json(text: str, kind: str | None = None) -> Event:
    """Read an event written by :func:`to_json` (version 1) or a version-0 payload, whose
    ``kind`` must be given (it lived only in the outbox row). Raises ValueError."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("an event is a JSON object")
    version = data.pop("v", 0)
    stored_kind = data.pop("kind", None) if version >= 1 else None
    if version not in (0, VERSION):
        raise ValueError(f"unknown event version {version!r}")
    if stored_kind is not None and kind is not None and stored_kind != kind:
        raise ValueError(f"event kind {stored_kind!r} stored as {kind!r}")
    cls = KINDS.get(stored_kind or kind or "")
    if cls is None:
        raise ValueError(f"unknown event kind {stored_kind or kind!r}")
    return _decode(cls, data)  # type: ignore[no-any-return]


def _encode(obj: Any) -> dict[str, Any]:
    return {f.name: _encode_value(getattr(obj, f.name)) for f in fields(obj)}


def _encode_value(value: Any) -> Any:
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    return value


def _decode(cls: type[Any], data: Mapping[str, Any]) -> Any:
    """Fields added later have defaults: a payload written before them takes the default."""
    hints = get_type_hints(cls)
    return cls(
        **{
            f.name: _decode_value(hints[f.name], data[f.name])
            for f in fields(cls)
            if f.name in data or f.default is MISSING
        }
    )


def _decode_value(hint: Any, value: Any) -> Any:
    if hint is str:
        return str(value)
    if hint is bool:
        return bool(value)
    if hint is int:
        return int(value)
    if hint is date:
        return date.fromisoformat(value)
    if hint is datetime:
        return datetime.fromisoformat(value)
    origin = get_origin(hint)
    if origin in (Union, types.UnionType) and set(get_args(hint)) == {datetime, date}:
        return parse_when(value)
    if origin is tuple:
        (item, _ellipsis) = get_args(hint)
        return tuple(_decode(item, v) for v in value)
    raise TypeError(f"no JSON form for {hint!r}")
