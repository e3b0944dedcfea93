"""Hypothesis throws edits, outages, token loss, restarts and mail failures at the engine.

Whatever happens, once the server answers again the store's open findings are exactly what
the rules say about the server's entries, each finding is announced exactly once per time it
opens, and no notification is lost.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import func, select

from syncd.config import parse_config
from syncd.domain import rules
from syncd.domain.tracking import window_for
from syncd.errors import NotifyError, SourceError
from syncd.notify.memory import MemoryNotifier
from syncd.parse.ical import parse_ical
from syncd.sources.memory import MemorySource
from syncd.store import open_store
from syncd.store import schema as t
from syncd.track.engine import Engine
from tests.harness import EventSpec
from tests.harness.ical_build import spec_to_ical

LON = ZoneInfo("Europe/London")
T0 = datetime(2026, 10, 23, 7, 0, tzinfo=LON).astimezone(UTC)  # the clocks go back on day 2
CALS = {"s1": "amira", "s2": "ben"}
UIDS = ["v1", "v2"]
VARIANTS = {
    "good": dict(
        summary="HV Patel family",
        location="1 Mill Lane, Belper DE56 1AA",
        description="Mob 07911 123456. Going straight home after",
    ),
    "no-postcode": dict(
        summary="HV Patel family",
        location="1 Mill Lane, Belper",
        description="Mob 07911 123456. Going straight home after",
    ),
    "no-who": dict(
        summary="HV",
        location="1 Mill Lane, Belper DE56 1AA",
        description="Mob 07911 123456. Going straight home after",
    ),
    "no-return": dict(summary="Visit: Jones", location="DE4 3LT", description="Tel 01332 123456"),
    "not-a-visit": dict(summary="Team meeting", location="", description=""),
}


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.config = parse_config(
            {
                "database": f"sqlite:///{Path(self.tmp.name) / 'state.db'}",
                "blind_after": 2,
                "empty_grace_minutes": 30,
                "sources": [{"name": "mem", "kind": "memory"}],
                "teams": [
                    {
                        "name": "North",
                        "monitors": ["duty@council.example"],
                        "staff": [
                            {"id": k, "name": k, "calendar": {"source": "mem", "locator": v}}
                            for k, v in CALS.items()
                        ],
                    }
                ],
            }
        )
        self.server = MemorySource()
        self.server.calendars = {v: {} for v in CALS.values()}
        self.notifier = MemoryNotifier()
        self.now = T0
        self.engine = self._engine()
        self.openings = 0
        self.healthy_since_change = False

    def _engine(self) -> Engine:
        return Engine(
            self.config,
            open_store(self.config.database),
            self.notifier,
            sources={"mem": self.server},
        )

    # --- the world changes -------------------------------------------------------------
    @rule(
        cal=st.sampled_from(sorted(CALS.values())),
        uid=st.sampled_from(UIDS),
        variant=st.sampled_from(sorted(VARIANTS)),
        day=st.integers(0, 2),
        hour=st.sampled_from([9, 14]),
    )
    def put(self, cal: str, uid: str, variant: str, day: int, hour: int) -> None:
        start = datetime.combine(
            self.now.astimezone(LON).date() + timedelta(days=day),
            datetime.min.time().replace(hour=hour),
            tzinfo=LON,
        )
        spec = EventSpec(uid=uid, start=start, end=start + timedelta(hours=1), **VARIANTS[variant])
        self.server.put(cal, f"{uid}.ics", spec_to_ical(spec))

    @rule(cal=st.sampled_from(sorted(CALS.values())), uid=st.sampled_from(UIDS))
    def delete(self, cal: str, uid: str) -> None:
        self.server.delete(cal, f"{uid}.ics")

    @rule(permanent=st.booleans())
    def server_down(self, permanent: bool) -> None:
        self.server.fail = SourceError("mem: down", permanent=permanent)

    @rule()
    def server_up(self) -> None:
        self.server.fail = None

    @rule()
    def server_loses_tokens(self) -> None:
        self.server.expire_tokens()

    @rule(permanent=st.booleans())
    def smtp_down(self, permanent: bool) -> None:
        self.notifier.fail = NotifyError("smtp down", permanent=permanent)

    @rule()
    def smtp_up(self) -> None:
        self.notifier.fail = None

    @rule()
    def restart(self) -> None:
        self.engine.close()
        self.engine = self._engine()

    @rule(minutes=st.sampled_from([1, 5, 45, 180, 24 * 60]))
    def cycle(self, minutes: int) -> None:
        before = set(self._open())
        self.now += timedelta(minutes=minutes)
        self.engine.cycle(self.now)
        self.openings += len(set(self._open()) - before)

    # --- what must always hold ---------------------------------------------------------
    def _open(self) -> list[str]:
        return [k for cal in CALS for k in self.engine.store.open_findings(cal)]

    def _expected(self, cal_key: str) -> set[str]:
        window = window_for(self.now, LON, self.config.lookahead_days)
        occs = []
        for item in self.server.calendars[CALS[cal_key]].values():
            occs.extend(parse_ical(item.data, window=window, tz=LON).occurrences)
        result = rules.check(
            occs, calendar=cal_key, tz=LON, window=window, config=self.config.rules
        )
        return {f.key for f in result.findings}

    @precondition(lambda self: self.server.fail is None)
    @invariant()
    def store_matches_the_server_after_a_healthy_cycle(self) -> None:
        self.now += timedelta(minutes=1)
        before = set(self._open())
        self.engine.cycle(self.now)
        self.openings += len(set(self._open()) - before)
        for key in CALS:
            state = self.engine.store.calendar(key)
            assert state is not None
            if state.empty_since is not None:
                continue  # entries deliberately held while a calendar reads as empty
            assert set(self.engine.store.open_findings(key)) == self._expected(key)

    @invariant()
    def each_opening_is_announced_exactly_once(self) -> None:
        with self.engine.store.engine.connect() as conn:
            announced = conn.execute(
                select(func.count()).select_from(t.outbox).where(t.outbox.c.kind == "finding")
            ).scalar_one()
        assert announced == self.openings

    def teardown(self) -> None:
        # Heal everything; every notification not given up as permanent must go out.
        self.notifier.fail = None
        self.server.fail = None
        for _ in range(8):
            self.now += timedelta(minutes=31)
            self.engine.cycle(self.now)
        assert self.engine.store.pending_count() == 0
        self.engine.close()
        self.tmp.cleanup()


EngineMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngine = EngineMachine.TestCase
