"""The Source contract (syncd/sources/base.py), proven against every backend's harness.

Harnesses: memory, CalDAV on real Radicale and Xandikos, and (when their modules exist)
tests/harness/ics.py, ews.py and graph.py. An optional harness module is found by, in order:
``open_harness(...)`` (a context manager), ``make_harness(...)``, or a class named
``<Kind>Harness``. Their parameters are filled by name from ``tmp_path``, ``request`` and
``tmp_path_factory``; the harness is closed afterwards if it has ``close()``.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events

from syncd.domain.model import Occurrence, RawItem
from syncd.errors import AuthError
from syncd.sources.base import ChangeSet, Source, Window
from tests.harness import EventSpec, Harness
from tests.harness.caldav import CalDavHarness
from tests.harness.memory import MemoryHarness

LONDON = ZoneInfo("Europe/London")
WINDOW = Window(datetime(2025, 3, 10, tzinfo=LONDON), datetime(2025, 4, 7, tzinfo=LONDON))

HarnessFactory = Callable[[pytest.FixtureRequest, Path], contextlib.AbstractContextManager[Any]]


# --- harness discovery ------------------------------------------------------------------------


@contextlib.contextmanager
def _memory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    h = MemoryHarness()
    yield h
    h.close()


def _caldav(fixture: str) -> HarnessFactory:
    @contextlib.contextmanager
    def open_(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
        h = CalDavHarness(request.getfixturevalue(fixture))
        try:
            yield h
        finally:
            h.close()

    return open_


def _optional(kind: str) -> HarnessFactory:
    @contextlib.contextmanager
    def open_(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
        try:
            module = importlib.import_module(f"tests.harness.{kind}")
        except ModuleNotFoundError as exc:
            if exc.name != f"tests.harness.{kind}":
                raise  # the harness exists but is broken: fail, don't hide it
            pytest.skip(f"tests/harness/{kind}.py not written yet")
        available = {
            "tmp_path": tmp_path,
            "request": request,
            "tmp_path_factory": request.getfixturevalue("tmp_path_factory"),
        }
        for hook in ("open_harness", "make_harness", f"{kind.capitalize()}Harness"):
            target = getattr(module, hook, None)
            if target is None:
                continue
            if hook == "open_harness":
                with target(**_fill(target, available, kind)) as h:
                    yield h
                return
            h = target(**_fill(target, available, kind))
            try:
                yield h
            finally:
                if hasattr(h, "close"):
                    h.close()
            return
        pytest.skip(f"tests/harness/{kind}.py has no open_harness/make_harness/Harness class")

    return open_


def _fill(target: Callable[..., Any], available: dict[str, Any], kind: str) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for name, param in inspect.signature(target).parameters.items():
        if name in available:
            args[name] = available[name]
        elif param.default is inspect.Parameter.empty and param.kind not in (
            param.VAR_POSITIONAL,
            param.VAR_KEYWORD,
        ):
            pytest.skip(f"tests/harness/{kind}.py needs argument {name!r} the suite cannot give")
    return args


HARNESSES: dict[str, HarnessFactory] = {
    "memory": _memory,
    "radicale": _caldav("radicale_server"),
    "xandikos": _caldav("xandikos_server"),
    "ics": _optional("ics"),
    "ews": _optional("ews"),
    "graph": _optional("graph"),
}


@pytest.fixture(params=list(HARNESSES))
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    with HARNESSES[request.param](request, tmp_path) as h:
        yield h


# --- helpers --------------------------------------------------------------------------------


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LONDON)


def visit(uid: str, summary: str, start: datetime, **kw: Any) -> EventSpec:
    return EventSpec(uid=uid, summary=summary, start=start, end=start + timedelta(hours=1), **kw)


def uid_of(item: RawItem) -> str:
    if item.kind == "occurrence":
        return Occurrence.from_json(item.data).uid
    cal = icalendar.Calendar.from_ical(item.data)
    return str(next(c for c in cal.walk("VEVENT"))["UID"])


class Local:
    """The caller's copy of one calendar, updated the way the store does it."""

    def __init__(self, source: Source, locator: str):
        self.source, self.locator = source, locator
        self.items: dict[str, RawItem] = {}
        self.state: str | None = None

    def sync(self) -> ChangeSet:
        known = {h: i.etag for h, i in self.items.items()}
        cs = self.source.sync(self.locator, self.state, known, WINDOW)
        for href in cs.deletes:
            self.items.pop(href, None)
        for item in cs.upserts:
            self.items[item.href] = item
        self.state = cs.state
        return cs

    def uids(self) -> set[str]:
        return {uid_of(i) for i in self.items.values()}


def upserted_uids(cs: ChangeSet) -> set[str]:
    return {uid_of(i) for i in cs.upserts}


def _expect_request_count(harness: Harness, cs: ChangeSet, n: int) -> None:
    if harness.kind in ("caldav", "memory"):
        assert cs.requests == n


D1 = date(2025, 3, 11)


# --- the contract ----------------------------------------------------------------------------


def test_first_full_sync_returns_everything(harness: Harness) -> None:
    loc = harness.make_calendar("jsmith")
    for i in range(3):
        harness.put(loc, visit(f"v{i}", f"HV Family{i}", at(D1, 9 + i)))
    local = Local(harness.source(), loc)
    cs = local.sync()
    assert cs.full
    assert upserted_uids(cs) == {"v0", "v1", "v2"}
    assert cs.deletes == []
    assert all(i.etag for i in cs.upserts)
    assert cs.state is not None


def test_no_change_sync_returns_nothing_for_one_request(harness: Harness) -> None:
    loc = harness.make_calendar("jsmith")
    harness.put(loc, visit("v1", "HV Smith", at(D1, 10)))
    local = Local(harness.source(), loc)
    local.sync()
    cs = local.sync()
    assert cs.upserts == [] and cs.deletes == []
    assert not cs.full
    _expect_request_count(harness, cs, 1)


def test_create_edit_delete_are_reported_incrementally(harness: Harness) -> None:
    loc = harness.make_calendar("jsmith")
    harness.put(loc, visit("keep", "HV Keep", at(D1, 9)))
    harness.put(loc, visit("edit", "HV Edit", at(D1, 10)))
    harness.put(loc, visit("gone", "HV Gone", at(D1, 11)))
    local = Local(harness.source(), loc)
    local.sync()
    before = {uid_of(i): i for i in local.items.values()}

    harness.put(loc, visit("new", "HV New", at(D1, 14)))
    harness.put(loc, visit("edit", "HV Edit", at(D1, 15), location="Derby DE1 1AA"))
    harness.delete(loc, "gone")
    cs = local.sync()

    assert upserted_uids(cs) == {"new", "edit"}
    edited = next(i for i in cs.upserts if uid_of(i) == "edit")
    assert edited.etag != before["edit"].etag
    assert cs.deletes == [before["gone"].href]
    assert local.uids() == {"keep", "edit", "new"}


def test_move_between_calendars(harness: Harness) -> None:
    a, b = harness.make_calendar("alice"), harness.make_calendar("bob")
    harness.put(a, visit("mv", "HV Moving", at(D1, 10)))
    la, lb = Local(harness.source(), a), Local(harness.source(), b)
    la.sync()
    lb.sync()
    assert la.uids() == {"mv"} and lb.uids() == set()
    old_href = next(iter(la.items))

    harness.delete(a, "mv")
    harness.put(b, visit("mv", "HV Moving", at(D1, 10)))
    ca, cb = la.sync(), lb.sync()
    assert ca.deletes == [old_href] and ca.upserts == []
    assert upserted_uids(cb) == {"mv"} and cb.deletes == []


def test_expired_state_resyncs_from_scratch_with_the_right_deletes(harness: Harness) -> None:
    loc = harness.make_calendar("jsmith")
    for uid in ("a", "b", "c"):
        harness.put(loc, visit(uid, f"HV {uid}", at(D1, 10)))
    local = Local(harness.source(), loc)
    local.sync()
    gone_href = next(h for h, i in local.items.items() if uid_of(i) == "b")

    harness.delete(loc, "b")
    harness.put(loc, visit("d", "HV d", at(D1, 12)))
    try:
        harness.expire_state()
    except NotImplementedError as exc:
        pytest.skip(str(exc))
    cs = local.sync()
    assert cs.full
    assert cs.deletes == [gone_href]
    assert "d" in upserted_uids(cs)
    assert local.uids() == {"a", "c", "d"}
    assert local.sync().upserts == []  # and the new state works


def test_auth_failure_raises_auth_error(harness: Harness) -> None:
    loc = harness.make_calendar("jsmith")
    harness.put(loc, visit("v1", "HV Smith", at(D1, 10)))
    warm = Local(harness.source(), loc)
    warm.sync()  # an already-connected source must notice too
    harness.break_auth()
    with pytest.raises(AuthError) as info:
        warm.sync()
    assert info.value.permanent
    with pytest.raises(AuthError):
        Local(harness.source(), loc).sync()


def _visible_starts(items: list[RawItem], uid: str) -> list[datetime]:
    """Starts of the occurrences a user would see, expanded independently of syncd.parse.ical."""
    starts: list[datetime] = []
    for item in items:
        if item.kind == "occurrence":
            occ = Occurrence.from_json(item.data)
            if occ.uid == uid and not occ.cancelled and isinstance(occ.start, datetime):
                starts.append(occ.start)
            continue
        cal = icalendar.Calendar.from_ical(item.data)
        for ev in recurring_ical_events.of(cal).between(WINDOW.start, WINDOW.end):
            if str(ev["UID"]) == uid and str(ev.get("STATUS", "")).upper() != "CANCELLED":
                starts.append(ev.decoded("DTSTART"))
    return sorted(s.astimezone(UTC) for s in starts)


def test_recurring_series_with_exception_and_cancelled_occurrence(harness: Harness) -> None:
    loc = harness.make_calendar("jsmith")
    first = at(date(2025, 3, 12), 13)
    week = timedelta(days=7)
    moved = EventSpec(
        uid="series",
        summary="HV Brown",
        start=first + week + timedelta(hours=2),
        end=first + week + timedelta(hours=3),
    )
    cancelled = EventSpec(
        uid="series",
        summary="HV Brown",
        start=first + 2 * week,
        end=first + 2 * week + timedelta(hours=1),
        cancelled=True,
    )
    harness.put(
        loc,
        visit(
            "series",
            "HV Brown",
            first,
            rrule="FREQ=WEEKLY;COUNT=4",
            overrides={first + week: moved, first + 2 * week: cancelled},
            tzid="GMT Standard Time",  # as Outlook writes it
        ),
    )
    local = Local(harness.source(), loc)
    local.sync()
    # The fourth one is after the clocks go forward (30 March): 13:00 BST is 12:00 UTC.
    expected = [first, first + week + timedelta(hours=2), first + 3 * week]
    assert _visible_starts(list(local.items.values()), "series") == [
        e.astimezone(UTC) for e in expected
    ]


# --- the same entries give the same findings --------------------------------------------------

D2 = date(2025, 3, 31)  # after the clocks change
REALISTIC = [
    visit(
        "visit-a",
        "HV Smith family",
        at(D1, 9, 30),
        location="12 Acacia Avenue, Derby DE1 1AA",
        description="Tel: 01332 123456",
    ),
    visit("visit-b", "Home visit", at(D1, 11)),
    visit("meeting", "Team meeting", at(D1, 12, 30), location="County Hall"),
    visit(
        "visit-c",
        "HV Jones",
        at(D1, 14),
        location="4 Mill Lane, Matlock DE4 3LT",
        description="Tel: 01629 580123\nReturn: office",
    ),
    visit(
        "visit-d",
        "HV Patel",
        at(D2, 10),
        location="Flat 2, 9 Station Road, Derby DE1 2BB",
        description="Tel: 01332 654321\nGoing straight home after",
    ),
    visit(
        "visit-e",
        "HV Brown",
        at(date(2025, 3, 12), 13),
        location="7 Park Road, Belper DE56 1AB",
        description="Mob: 07700 900123\nReturn: home",
        rrule="FREQ=WEEKLY;COUNT=3",
        overrides={
            at(date(2025, 3, 19), 13): EventSpec(
                uid="visit-e",
                summary="HV Brown",
                start=at(date(2025, 3, 19), 13),
                end=at(date(2025, 3, 19), 14),
                cancelled=True,
            )
        },
    ),
]
EXPECTED_FINDINGS = {
    ("missing-who", "visit-b", at(D1, 11)),
    ("missing-postcode", "visit-b", at(D1, 11)),
    ("missing-contact", "visit-b", at(D1, 11)),
    ("missing-return", "visit-c", at(D1, 14)),
    ("invalid-contact", "visit-e", at(date(2025, 3, 12), 13)),
    ("invalid-contact", "visit-e", at(date(2025, 3, 26), 13)),
}


def test_the_same_entries_give_the_same_findings(harness: Harness) -> None:
    from syncd.domain import rules
    from syncd.parse import ical

    loc = harness.make_calendar("jsmith")
    for spec in REALISTIC:
        harness.put(loc, spec)
    local = Local(harness.source(), loc)
    local.sync()

    occurrences: list[Occurrence] = []
    try:
        for item in local.items.values():
            if item.kind == "occurrence":
                occurrences.append(Occurrence.from_json(item.data))
            else:
                parsed = ical.parse_ical(item.data, window=WINDOW, tz=LONDON)
                assert parsed.problems == []
                occurrences.extend(parsed.occurrences)
        result = rules.check(
            occurrences, calendar="jsmith", tz=LONDON, window=WINDOW, config=rules.RulesConfig()
        )
    except NotImplementedError:
        pytest.skip("syncd.parse.ical.parse_ical / syncd.domain.rules.check not implemented yet")
    got = {(f.rule, f.uid, _utc(f.start)) for f in result.findings}
    assert sorted(got) == sorted((r, u, _utc(s)) for r, u, s in EXPECTED_FINDINGS)


def _utc(value: datetime | date) -> datetime | date:
    return value.astimezone(UTC) if isinstance(value, datetime) else value


# --- who booked the entry ---------------------------------------------------------------------


def test_the_same_entry_gives_the_same_organizer(harness: Harness) -> None:
    from syncd.parse import ical

    loc = harness.make_calendar("jsmith")
    first = at(date(2025, 3, 12), 13)
    week = timedelta(days=7)
    booked_by = "Duty.Desk@Council.Example"  # as a colleague's client may write it
    harness.put(loc, visit("booked", "HV Smith", at(D1, 10), organizer=booked_by))
    moved = visit("series", "HV Brown", first + week + timedelta(hours=2))
    harness.put(
        loc,
        visit(
            "series",
            "HV Brown",
            first,
            rrule="FREQ=WEEKLY;COUNT=3",
            overrides={first + week: moved},
            tzid="GMT Standard Time",
            organizer="senior.pw@council.example",
        ),
    )
    harness.put(loc, visit("own", "HV Jones", at(D1, 14)))
    local = Local(harness.source(), loc)
    local.sync()

    got: dict[tuple[str, datetime | date], str] = {}
    for item in local.items.values():
        if item.kind == "occurrence":
            occurrences = [Occurrence.from_json(item.data)]
        else:
            occurrences = ical.parse_ical(item.data, window=WINDOW, tz=LONDON).occurrences
        for occ in occurrences:
            got[(occ.uid, _utc(occ.start))] = occ.organizer
    own = got.pop(("own", _utc(at(D1, 14))))
    assert got == {
        ("booked", _utc(at(D1, 10))): "duty.desk@council.example",
        ("series", _utc(first)): "senior.pw@council.example",
        ("series", _utc(first + week + timedelta(hours=2))): "senior.pw@council.example",
        ("series", _utc(first + 2 * week)): "senior.pw@council.example",
    }
    # An entry the owner wrote: iCalendar clients may leave ORGANIZER out; Exchange and
    # Graph name the owner.
    assert own in ("", loc.lower())
