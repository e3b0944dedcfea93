"""One Exchange / Microsoft 365 entry syncd cannot read must not blind the monitor to the rest
of that worker's calendar: the good visits are still checked, the bad entry is one
``unreadable-entry`` finding, there is no blind spot, and fixing the entry resolves it.
Through the engine, against the local fake EWS and Graph servers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from syncd.config import parse_config
from syncd.notify.memory import MemoryNotifier
from syncd.store import open_store
from syncd.track.engine import Engine
from tests.fakes.graph_server import Reply
from tests.harness import EventSpec
from tests.harness.graph import spec_to_graph

LON = ZoneInfo("Europe/London")
T0 = datetime(2026, 12, 1, 6, 0, tzinfo=LON).astimezone(UTC)
START = datetime(2026, 12, 2, 10, tzinfo=LON)
COMPLETE = "Mob 07911 123456. Going straight home after"


def visit(uid: str, summary: str, location: str, hour: int = 10) -> EventSpec:
    start = START.replace(hour=hour)
    return EventSpec(
        uid=uid,
        summary=summary,
        start=start,
        end=start + timedelta(hours=1),
        location=location,
        description=COMPLETE if hour == 15 else "Mob 07911 123456. Back to office 17:00",
        tzid="GMT Standard Time",
    )


GOOD = visit("good", "HV Patel family", "12 Acacia Avenue, Derby DE1 3AB", 9)
NO_POSTCODE = visit("nopc", "HV Jones family", "4 Mill Lane, Matlock", 12)
BAD = visit("bad", "HV Smith family", "1 High St, Derby DE1 1AA", 15)


def engine_for(h: Any, tmp_path: Path, mailbox: str) -> Engine:
    options = h.options().model_dump(mode="json", exclude_none=True)
    cfg = parse_config(
        {
            "database": f"sqlite:///{tmp_path / 'state.db'}",
            "notify": {"settle_minutes": 0, "morning_report": None},
            "sources": [{"name": "m", "kind": h.kind, **options}],
            "teams": [
                {
                    "name": "North",
                    "monitors": ["duty@council.example"],
                    "staff": [
                        {"id": "s1", "name": "A", "calendar": {"source": "m", "locator": mailbox}}
                    ],
                }
            ],
        }
    )
    return Engine(cfg, open_store(cfg.database), MemoryNotifier())


@pytest.fixture
def ews(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from tests.harness.ews import EwsHarness

    h = EwsHarness()
    monkeypatch.setenv("SYNCD_TEST_EWS_PASSWORD", h.fake.password)
    yield h
    h.close()


@pytest.fixture
def graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from tests.harness.graph import GraphHarness

    h = GraphHarness(tmp_path)
    monkeypatch.setenv("SYNCD_GRAPH_SECRET", h.secret)
    yield h
    h.close()


def rules(engine: Engine) -> list[tuple[str, str]]:
    return sorted((f.rule, f.summary) for f in engine.store.open_findings("s1").values())


def test_a_corrupt_exchange_item_is_one_finding_not_a_blind_calendar(
    ews: Any, tmp_path: Path
) -> None:
    mailbox = ews.make_calendar("amira")
    for spec in (GOOD, NO_POSTCODE, BAD):
        ews.put(mailbox, spec)
    ews.fake.corrupt(mailbox, "bad")
    engine = engine_for(ews, tmp_path, mailbox)
    try:
        report = engine.cycle(T0)
        assert report.failed == 0 and report.blind == []
        assert report.visits == 2  # both readable visits are checked
        assert rules(engine) == [
            ("missing-postcode", "HV Jones family"),
            ("unreadable-entry", "HV Smith family"),
        ]
        state = engine.store.calendar("s1")
        assert state is not None and state.blind_since is None and state.failures == 0

        ews.fake.corrupt(mailbox, "bad", False)
        ews.put(mailbox, BAD)  # saved again in Outlook: a new ChangeKey
        report = engine.cycle(T0 + timedelta(minutes=1))
        assert report.visits == 3 and report.resolved_findings == 1
        assert rules(engine) == [("missing-postcode", "HV Jones family")]
    finally:
        engine.close()


def test_an_unreadable_graph_event_is_one_finding_not_a_blind_calendar(
    graph: Any, tmp_path: Path
) -> None:
    mailbox = graph.make_calendar("amira")
    rows = []
    for i, spec in enumerate((GOOD, NO_POSTCODE, BAD)):
        row = spec_to_graph(spec)
        row.update(id=spec.uid, changeKey=f"ck{i}", type="singleInstance")
        rows.append(row)
    # A custom Outlook zone syncd cannot resolve offline.
    rows[2]["start"] = {**rows[2]["start"], "timeZone": "tzone://Microsoft/Custom"}
    link = f"{graph.server.graph_url}/users/{mailbox}/calendarView/delta?$deltatoken=t1"
    graph.server.inject(Reply(200, {"value": rows, "@odata.deltaLink": link}))
    engine = engine_for(graph, tmp_path, mailbox)
    try:
        report = engine.cycle(T0)
        assert report.failed == 0 and report.blind == []
        assert report.visits == 2
        assert rules(engine) == [
            ("missing-postcode", "HV Jones family"),
            ("unreadable-entry", "HV Smith family"),
        ]
        finding = next(
            f for f in engine.store.open_findings("s1").values() if f.rule == "unreadable-entry"
        )
        assert finding.message == "Graph event has an unknown time zone"

        fixed = spec_to_graph(BAD) | {"id": "bad", "changeKey": "ck9", "type": "singleInstance"}
        graph.server.inject(Reply(200, {"value": [fixed], "@odata.deltaLink": link}))
        report = engine.cycle(T0 + timedelta(minutes=1))
        assert report.failed == 0 and report.visits == 3 and report.resolved_findings == 1
        assert rules(engine) == [("missing-postcode", "HV Jones family")]
    finally:
        engine.close()
