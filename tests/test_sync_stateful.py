"""Random edit/sync/fail/expire sequences: the caller's copy always converges on the server.

Like vdirsyncer's stateful tests: Hypothesis drives a server (MemorySource, the reference
backend) and a local copy updated from ChangeSets exactly as the store applies them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import icalendar
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    precondition,
    rule,
    run_state_machine_as_test,
)

from syncd.domain.model import RawItem
from syncd.errors import AuthError, SourceError
from syncd.sources.base import ChangeSet, Window
from syncd.sources.memory import MemorySource
from tests.harness import EventSpec
from tests.harness.caldav import CalDavHarness

WINDOW = Window(datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC))
CALENDARS = ("alice", "bob")
UIDS = [f"u{i}" for i in range(6)]


def ics(uid: str, version: int) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20250101T000000Z\r\nDTSTART:20250310T100000Z\r\n"
        f"SUMMARY:HV v{version}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


class Local:
    def __init__(self) -> None:
        self.items: dict[str, RawItem] = {}
        self.state: str | None = None

    def apply(self, cs: ChangeSet) -> None:
        """What the store does with a successful sync (full or not: upsert, delete)."""
        for href in cs.deletes:
            self.items.pop(href, None)
        for item in cs.upserts:
            self.items[item.href] = item
        self.state = cs.state

    def snapshot(self) -> tuple[dict[str, RawItem], str | None]:
        return dict(self.items), self.state


class SyncMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.server = MemorySource("mem")
        for cal in CALENDARS:
            self.server.calendars[cal] = {}
        self.local = {cal: Local() for cal in CALENDARS}
        self.version = 0

    @rule(cal=st.sampled_from(CALENDARS), uid=st.sampled_from(UIDS))
    def put(self, cal: str, uid: str) -> None:
        self.version += 1
        self.server.put(cal, f"{uid}.ics", ics(uid, self.version))

    @rule(cal=st.sampled_from(CALENDARS), uid=st.sampled_from(UIDS))
    def delete(self, cal: str, uid: str) -> None:
        self.server.delete(cal, f"{uid}.ics")

    @rule()
    def expire_tokens(self) -> None:
        self.server.expire_tokens()

    @rule(
        failure=st.sampled_from(
            [
                None,
                SourceError("mem: server timed out", permanent=False),
                AuthError("mem: server rejected the credentials (HTTP 401)"),
            ]
        )
    )
    def set_failure(self, failure: SourceError | None) -> None:
        self.server.fail = failure

    @rule(cal=st.sampled_from(CALENDARS))
    def sync(self, cal: str) -> None:
        local = self.local[cal]
        before = local.snapshot()
        known = {h: i.etag for h, i in local.items.items()}
        try:
            cs = self.server.sync(cal, local.state, known, WINDOW)
        except SourceError:
            assert self.server.fail is not None
            assert local.snapshot() == before  # a failed sync changes nothing
            return
        assert set(cs.deletes) <= set(known), "deletes only what the caller holds"
        assert len(set(cs.deletes)) == len(cs.deletes)
        local.apply(cs)
        assert local.items == self.server.calendars[cal], "local copy equals the server"

    @precondition(lambda self: self.server.fail is None)
    @rule(cal=st.sampled_from(CALENDARS))
    def sync_twice_is_quiet(self, cal: str) -> None:
        local = self.local[cal]
        local.apply(
            self.server.sync(cal, local.state, {h: i.etag for h, i in local.items.items()}, WINDOW)
        )
        again = self.server.sync(
            cal, local.state, {h: i.etag for h, i in local.items.items()}, WINDOW
        )
        assert again.upserts == [] and again.deletes == []
        local.apply(again)


TestSync = SyncMachine.TestCase
TestSync.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


# --- the same game through a harness, against real servers --------------------------------


class HarnessMachine(RuleBasedStateMachine):
    """Edits go through a harness (a real CalDAV server); the model is the set of entries."""

    make_harness: Callable[[], Any]

    def __init__(self) -> None:
        super().__init__()
        self.h = self.make_harness()
        self.cals = [self.h.make_calendar(name) for name in CALENDARS]
        self.truth: dict[str, dict[str, str]] = {loc: {} for loc in self.cals}
        self.local = {loc: Local() for loc in self.cals}
        self.source = self.h.source()
        self.version = 0
        self.auth_broken = False

    def teardown(self) -> None:
        self.h.close()

    # The harness writes with the same account, so edits wait while its password is wrong.
    @precondition(lambda self: not self.auth_broken)
    @rule(i=st.integers(0, len(CALENDARS) - 1), uid=st.sampled_from(UIDS))
    def put(self, i: int, uid: str) -> None:
        self.version += 1
        summary = f"HV v{self.version}"
        start = datetime(2025, 3, 11, 10, tzinfo=UTC)
        self.h.put(
            self.cals[i],
            EventSpec(uid=uid, summary=summary, start=start, end=start + timedelta(hours=1)),
        )
        self.truth[self.cals[i]][uid] = summary

    @precondition(lambda self: not self.auth_broken)
    @rule(i=st.integers(0, len(CALENDARS) - 1), data=st.data())
    def delete(self, i: int, data: st.DataObject) -> None:
        present = sorted(self.truth[self.cals[i]])
        if present:
            uid = data.draw(st.sampled_from(present))
            self.h.delete(self.cals[i], uid)
            del self.truth[self.cals[i]][uid]

    @rule()
    def expire(self) -> None:
        with contextlib.suppress(NotImplementedError):
            self.h.expire_state()

    @rule(broken=st.booleans())
    def auth(self, broken: bool) -> None:
        (self.h.break_auth if broken else self.h.restore_auth)()
        self.auth_broken = broken

    @rule()
    def sync(self) -> None:
        for loc in self.cals:
            self._sync(loc)

    def _sync(self, loc: str) -> None:
        local = self.local[loc]
        before = local.snapshot()
        known = {h: item.etag for h, item in local.items.items()}
        try:
            cs = self.source.sync(loc, local.state, known, WINDOW)
        except AuthError:
            assert self.auth_broken
            assert local.snapshot() == before
            return
        assert not self.auth_broken
        local.apply(cs)
        got = {}
        for item in local.items.values():
            ev = next(iter(icalendar.Calendar.from_ical(item.data).walk("VEVENT")))
            got[str(ev["UID"])] = str(ev["SUMMARY"])
        assert got == self.truth[loc]


@pytest.mark.parametrize("server", ["radicale_server", "xandikos_server"])
def test_caldav_sync_converges_under_random_edits(
    request: pytest.FixtureRequest, server: str
) -> None:
    shared = request.getfixturevalue(server)

    class Machine(HarnessMachine):
        def make_harness(self) -> CalDavHarness:
            return CalDavHarness(shared)

    run_state_machine_as_test(
        Machine, settings=settings(max_examples=15, stateful_step_count=25, deadline=None)
    )
