"""Exchange (EWS) and Microsoft 365 (Graph) through the whole daemon, configured as an admin
would: findings reach the monitor, fixes are noticed, and a credential failure is a blind
spot reported once, never a silent gap. Local servers speak the real wire protocols."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from syncd.config import parse_config
from syncd.notify.email import EmailNotifier
from syncd.store import open_store
from syncd.track.engine import Engine
from tests.harness import EventSpec
from tests.smtp_sink import Sink, smtp_sink

LON = ZoneInfo("Europe/London")
T0 = datetime(2026, 12, 1, 6, 0, tzinfo=LON).astimezone(UTC)


def visit(uid: str, summary: str, location: str) -> EventSpec:
    start = datetime(2026, 12, 2, 10, tzinfo=LON)
    return EventSpec(
        uid=uid,
        summary=summary,
        start=start,
        end=start + timedelta(hours=1),
        location=location,
        description="Mob 07911 123456. Going straight home after",
        tzid="GMT Standard Time",
    )


@pytest.fixture
def sink() -> Iterator[Sink]:
    with smtp_sink() as s:
        yield s


@pytest.fixture(params=["ews", "graph"])
def harness(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    h: Any
    if request.param == "ews":
        from tests.harness.ews import EwsHarness

        h = EwsHarness()
        monkeypatch.setenv("SYNCD_TEST_EWS_PASSWORD", h.fake.password)
        h.restore = lambda pw=h.fake.password: setattr(h.fake, "password", pw)
    else:
        from tests.harness.graph import GraphHarness

        h = GraphHarness(tmp_path)
        monkeypatch.setenv("SYNCD_GRAPH_SECRET", h.secret)
        h.restore = lambda: h.server.rotate_secret(h.secret)
    yield h
    h.close()


def test_microsoft_calendars_through_the_daemon(harness: Any, sink: Sink, tmp_path: Path) -> None:
    mailbox = harness.make_calendar("amira")
    options = harness.options().model_dump(mode="json", exclude_none=True)
    cfg = parse_config(
        {
            "database": f"sqlite:///{tmp_path / 'state.db'}",
            "smtp": {
                "host": "127.0.0.1",
                "port": sink.port,
                "security": "none",
                "sender": "syncd@council.example",
            },
            "notify": {"settle_minutes": 0, "morning_report": None},
            "sources": [{"name": "m", "kind": harness.kind, **options}],
            "teams": [
                {
                    "name": "North",
                    "monitors": ["duty@council.example"],
                    "staff": [
                        {
                            "id": "s1",
                            "name": "Amira Khan",
                            "calendar": {"source": "m", "locator": mailbox},
                        },
                    ],
                }
            ],
        }
    )
    assert cfg.smtp is not None
    engine = Engine(cfg, open_store(cfg.database), EmailNotifier(cfg.smtp, lambda _f: ""))
    now = T0
    try:
        harness.put(mailbox, visit("v1", "HV Patel family", "12 Acacia Avenue, Derby"))
        now += timedelta(minutes=1)
        report = engine.cycle(now)
        assert report.failed == 0 and report.visits == 1
        assert [f.rule for f in engine.store.open_findings("s1").values()] == ["missing-postcode"]
        assert "HV Patel family" in Sink.text(sink.take()[0])

        harness.put(mailbox, visit("v1", "HV Patel family", "12 Acacia Avenue, Derby DE1 3AB"))
        now += timedelta(minutes=1)
        engine.cycle(now)
        assert engine.store.open_findings("s1") == {}
        assert "1 fixed" in sink.take()[0]["Subject"]

        harness.break_auth()
        now += timedelta(minutes=1)
        report = engine.cycle(now)
        assert report.blind == ["s1"]
        msgs = sink.take()
        assert len(msgs) == 1 and "NOT BEING TRACKED" in Sink.text(msgs[0])
        now += timedelta(minutes=1)
        engine.cycle(now)
        assert sink.take() == []

        harness.restore()
        for _ in range(10):  # msal may hold a failed token answer briefly
            now += timedelta(minutes=1)
            engine.cycle(now)
            msgs = sink.take()
            if msgs:
                break
        assert "readable again" in msgs[0]["Subject"]
    finally:
        engine.close()


def test_graph_mailboxes_are_synced_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syncd.notify.memory import MemoryNotifier
    from syncd.sources.graph.source import GraphSource
    from tests.harness.graph import GraphHarness

    h = GraphHarness(tmp_path)
    monkeypatch.setenv("SYNCD_GRAPH_SECRET", h.secret)
    try:
        boxes = [h.make_calendar(f"w{i}") for i in range(25)]
        for i, box in enumerate(boxes):
            h.put(box, visit(f"v{i}", "HV", "DE1 3AB"))
        cfg = parse_config(
            {
                "database": f"sqlite:///{tmp_path / 'state.db'}",
                "notify": {"settle_minutes": 0, "morning_report": None},
                "sources": [
                    {
                        "name": "m",
                        "kind": "graph",
                        **h.options().model_dump(mode="json", exclude_none=True),
                    }
                ],
                "teams": [
                    {
                        "name": "North",
                        "monitors": ["duty@council.example"],
                        "staff": [
                            {
                                "id": f"s{i}",
                                "name": f"W{i}",
                                "calendar": {"source": "m", "locator": box},
                            }
                            for i, box in enumerate(boxes)
                        ],
                    }
                ],
            }
        )
        engine = Engine(cfg, open_store(cfg.database), MemoryNotifier())
        report = engine.cycle(T0)
        src = engine.source("m")
        assert isinstance(src, GraphSource)
        assert report.failed == 0 and report.visits == 25 and report.new_findings == 25
        assert src.http_requests == 2  # 25 mailboxes: one $batch of 20, one of 5
        before = src.http_requests
        engine.cycle(T0 + timedelta(minutes=1))
        assert src.http_requests - before == 2
        engine.close()
    finally:
        h.close()
