"""The store on PostgreSQL: the same migrations and the same engine behaviour, by URL alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from syncd.config import parse_config
from syncd.notify.memory import MemoryNotifier
from syncd.sources.memory import MemorySource
from syncd.store import open_store
from syncd.track.engine import Engine
from tests import pg
from tests.harness.ical_build import spec_to_ical
from tests.test_engine import T0, visit

pytestmark = pytest.mark.skipif(
    not pg.available(), reason="PostgreSQL server binaries not installed"
)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with pg.postgres() as url:
        yield url


def test_engine_on_postgres(pg_url: str, tmp_path: Path) -> None:
    cfg = parse_config(
        {
            "database": pg_url,
            "notify": {"settle_minutes": 0, "morning_report": "07:30:00"},
            "sources": [{"name": "mem", "kind": "memory"}],
            "teams": [
                {
                    "name": "North",
                    "monitors": ["duty@council.example"],
                    "staff": [
                        {
                            "id": "s1",
                            "name": "Amira Khan",
                            "calendar": {"source": "mem", "locator": "amira"},
                        },
                    ],
                }
            ],
        }
    )
    server = MemorySource()
    server.calendars = {"amira": {}}
    notifier = MemoryNotifier()
    engine = Engine(cfg, open_store(cfg.database), notifier, sources={"mem": server})
    spec = visit("a1", "HV Patel family", 1, 10, location="12 Acacia Avenue, Derby")
    server.put("amira", "a1.ics", spec_to_ical(spec))
    now = T0 + timedelta(minutes=1)
    report = engine.cycle(now)
    assert report.new_findings == 1 and len(notifier.sent) == 1
    finding = next(iter(engine.store.open_findings("s1").values()))
    assert finding.start_utc.utcoffset() == timedelta(0)
    # Fix, break again, restart: the same bookkeeping as on SQLite.
    server.put("amira", "a1.ics", spec_to_ical(visit("a1", "HV Patel family", 1, 10)))
    engine.cycle(now + timedelta(minutes=1))
    assert engine.store.open_findings("s1") == {}
    server.put("amira", "a1.ics", spec_to_ical(spec))
    engine.close()
    engine = Engine(cfg, open_store(cfg.database), notifier, sources={"mem": server})
    engine.cycle(now + timedelta(minutes=2))
    assert len(engine.store.open_findings("s1")) == 1
    engine.cycle(now + timedelta(hours=2))  # 09:03 local: the morning report, once
    engine.cycle(now + timedelta(hours=3))
    assert sum("morning report" in m.subject for m in notifier.sent) == 1
    engine.close()
