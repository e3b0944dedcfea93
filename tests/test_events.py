"""Typed events: every type round-trips through its versioned JSON, and rows written before
events were typed (version 0: no "v", kind only in the outbox column) still read and send."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert

from syncd.config import parse_config
from syncd.domain.events import (
    EVENT_TYPES,
    Blind,
    Emptied,
    EmptyAccepted,
    Event,
    Fixed,
    MorningReport,
    NewFinding,
    Nudge,
    Recovered,
    Refilled,
    ReportBlind,
    ReportLine,
    from_json,
    to_json,
)
from syncd.notify.memory import MemoryNotifier
from syncd.sources.memory import MemorySource
from syncd.store import open_store
from syncd.store import schema as t
from syncd.track.engine import CycleReport, Engine

BST = timezone(timedelta(hours=1))
AT = datetime(2026, 10, 24, 9, 30, tzinfo=BST)
SAMPLES: dict[type, Event] = {
    NewFinding: NewFinding("s1", "Amira", "missing-postcode", "HV Patel", AT, "no postcode"),
    Nudge: Nudge("s1", "Amira", "missing-times", "HV allday", date(2026, 12, 2), "no times"),
    Fixed: Fixed("s1", "Amira", "missing-who", "HV", AT),
    Blind: Blind("s2", "Ben", AT, "mem: down"),
    Recovered: Recovered("s2", "Ben", AT),
    Emptied: Emptied("s3", "Cat", AT),
    EmptyAccepted: EmptyAccepted("s3", "Cat", 60),
    Refilled: Refilled("s3", "Cat", AT),
    MorningReport: MorningReport(
        day=date(2026, 12, 1),
        findings=(
            ReportLine("s1", "Amira", "missing-contact", "HV Jones", AT, "no number"),
            ReportLine("s1", "Amira", "missing-times", "HV x", date(2026, 12, 2), "no times"),
        ),
        blind=(ReportBlind("Ben", AT),),
        visits=7,
    ),
}


def test_every_event_type_has_a_sample() -> None:
    assert set(SAMPLES) == set(EVENT_TYPES)
    assert len({cls.kind for cls in EVENT_TYPES}) == len(EVENT_TYPES)


@pytest.mark.parametrize("event", SAMPLES.values(), ids=lambda e: e.kind)
def test_each_event_round_trips_through_versioned_json(event: Event) -> None:
    text = to_json(event)
    data = json.loads(text)
    assert data["v"] == 1 and data["kind"] == event.kind
    back = from_json(text)
    assert back == event and type(back) is type(event)
    assert from_json(text, event.kind) == event


def test_version_0_payloads_read_with_the_kind_from_the_row() -> None:
    # As the engine wrote them before events were typed.
    finding = {
        "staff_id": "s1",
        "staff_name": "Amira",
        "rule": "missing-postcode",
        "summary": "HV Patel",
        "start": "2026-10-24T09:30:00+01:00",
        "message": "no postcode",
    }
    assert from_json(json.dumps(finding), "finding") == SAMPLES[NewFinding]
    morning = {
        "day": "2026-12-01",
        "findings": [
            finding | {"rule": "missing-contact", "summary": "HV Jones", "message": "no number"},
            finding
            | {"rule": "missing-times", "summary": "HV x", "start": "2026-12-02"}
            | {"message": "no times"},
        ],
        "blind": [{"staff_name": "Ben", "since": "2026-10-24T09:30:00+01:00"}],
        "visits": 7,
    }
    assert from_json(json.dumps(morning), "morning") == SAMPLES[MorningReport]
    accepted = {"staff_id": "s3", "staff_name": "Cat", "grace_minutes": 60}
    assert from_json(json.dumps(accepted), "empty-accepted") == SAMPLES[EmptyAccepted]


def test_unknown_versions_kinds_and_mismatches_are_refused() -> None:
    good = json.loads(to_json(SAMPLES[Blind]))
    with pytest.raises(ValueError, match="version"):
        from_json(json.dumps(good | {"v": 2}))
    with pytest.raises(ValueError, match="kind"):
        from_json(json.dumps(good), "fixed")
    with pytest.raises(ValueError, match="kind"):
        from_json(json.dumps({"staff_id": "s1"}), "no-such-kind")


def test_a_version_0_row_left_in_the_store_is_still_sent(tmp_path: Path) -> None:
    config = parse_config(
        {
            "database": f"sqlite:///{tmp_path / 's.db'}",
            "sources": [{"name": "mem", "kind": "memory"}],
            "teams": [
                {
                    "name": "North",
                    "monitors": ["duty@council.example"],
                    "staff": [
                        {"id": "s2", "name": "Ben", "calendar": {"source": "mem", "locator": "b"}}
                    ],
                }
            ],
        }
    )
    store = open_store(config.database)
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    old = {"staff_id": "s2", "staff_name": "Ben", "since": "2026-12-01T08:00:00+00:00"}
    with store.engine.begin() as conn:
        conn.execute(
            insert(t.outbox).values(
                kind="blind",
                team="North",
                recipient=None,
                payload=json.dumps(old | {"error": "mem: down"}, sort_keys=True),
                created_at=now,
                due_at=now,
                attempts=0,
            )
        )
    (row,) = store.due(now)
    assert row.event == Blind("s2", "Ben", datetime(2026, 12, 1, 8, 0, tzinfo=UTC), "mem: down")
    notifier = MemoryNotifier()
    source = MemorySource()
    source.calendars = {"b": {}}
    engine = Engine(config, store, notifier, sources={"mem": source})
    engine.deliver(now, CycleReport())
    (msg,) = notifier.sent
    assert "Ben: cannot read calendar since Tue 1 Dec 08:00 (mem: down)" in msg.text
    assert store.pending_count() == 0
