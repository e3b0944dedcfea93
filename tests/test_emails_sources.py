"""Visit times in emails through the engine with the Microsoft fakes (issue 8 item 1): Graph
hands occurrences over in UTC, EWS in the entry's own zone; the monitor sees London time,
summer and winter."""

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
from tests.harness import EventSpec

LON = ZoneInfo("Europe/London")


@pytest.fixture(params=["graph", "ews"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "graph":
        from tests.harness.graph import GraphHarness

        h: Any = GraphHarness(tmp_path)
    else:
        from tests.harness.ews import EwsHarness

        h = EwsHarness()
    try:
        yield h
    finally:
        h.close()


@pytest.mark.parametrize(
    ("start", "tzid", "shown"),
    [
        (datetime(2026, 7, 14, 13, 0, tzinfo=UTC), "UTC", "Tue 14 Jul 14:00"),
        (datetime(2027, 1, 12, 13, 0, tzinfo=UTC), "UTC", "Tue 12 Jan 13:00"),
        (
            datetime(2026, 7, 14, 15, 0, tzinfo=ZoneInfo("Europe/Berlin")),
            "W. Europe Standard Time",
            "Tue 14 Jul 14:00",
        ),
        (
            datetime(2027, 1, 12, 15, 0, tzinfo=ZoneInfo("Europe/Berlin")),
            "W. Europe Standard Time",
            "Tue 12 Jan 14:00",
        ),
    ],
)
def test_microsoft_visit_times_are_shown_in_london_time(
    harness: Any, tmp_path: Path, start: datetime, tzid: str, shown: str
) -> None:
    locator = harness.make_calendar("amira")
    harness.put(
        locator,
        EventSpec(
            uid="a1",
            summary="HV Patel family",
            start=start,
            end=start + timedelta(hours=1),
            location="12 Acacia Avenue, Derby",  # no postcode
            description="Contact: 07911 123456\nGoing straight home after",
            tzid=tzid,
        ),
    )
    config = parse_config(
        {
            "database": f"sqlite:///{tmp_path / 'state.db'}",
            "notify": {"morning_report": None, "settle_minutes": 0},
            "sources": [{"name": "ms", "kind": "memory"}],  # the fake's source is passed in
            "teams": [
                {
                    "name": "North",
                    "monitors": ["duty@council.example"],
                    "staff": [
                        {
                            "id": "s1",
                            "name": "Amira Khan",
                            "calendar": {"source": "ms", "locator": locator},
                        }
                    ],
                }
            ],
        }
    )
    notifier = MemoryNotifier()
    engine = Engine(config, open_store(config.database), notifier, sources={"ms": harness.source()})
    try:
        engine.cycle(datetime(start.year, start.month, start.day, 5, 0, tzinfo=UTC))
    finally:
        engine.close()
    (digest,) = notifier.sent
    assert shown in digest.text, digest.text
    assert shown in digest.html
