"""The whole pipeline against real CalDAV servers: edits on the server become findings that
appear and resolve, and the monitor hears of each change once, by real SMTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from syncd.config import parse_config
from syncd.notify.email import EmailNotifier
from syncd.store import open_store
from syncd.track.engine import Engine
from tests.harness import EventSpec
from tests.harness.caldav import CalDavHarness
from tests.servers import SharedServer
from tests.smtp_sink import Sink, smtp_sink

LON = ZoneInfo("Europe/London")
T0 = datetime(2026, 12, 1, 6, 0, tzinfo=LON).astimezone(UTC)


def visit(
    uid: str,
    summary: str,
    *,
    day: int = 1,
    hour: int = 10,
    location: str = "5 Park Row, Matlock DE4 3LT",
    description: str = "Mob 07911 123456. Going straight home after",
) -> EventSpec:
    start = datetime(2026, 12, 1 + day, hour, tzinfo=LON)
    return EventSpec(
        uid=uid,
        summary=summary,
        start=start,
        end=start + timedelta(hours=1),
        location=location,
        description=description,
    )


@pytest.fixture(params=["radicale", "xandikos"])
def server(request: pytest.FixtureRequest) -> SharedServer:
    fixture: SharedServer = request.getfixturevalue(f"{request.param}_server")
    return fixture


@pytest.fixture
def sink() -> Iterator[Sink]:
    with smtp_sink() as s:
        yield s


class Team:
    def __init__(
        self, server: SharedServer, sink: Sink, tmp_path: object, monkeypatch: pytest.MonkeyPatch
    ):
        self.h = CalDavHarness(server)
        monkeypatch.setenv("SYNCD_E2E_PW", self.h.password)
        self.cal_a = self.h.make_calendar("amira")
        self.cal_b = self.h.make_calendar("ben")
        self.config = parse_config(
            {
                "database": f"sqlite:///{tmp_path}/state.db",
                "smtp": {
                    "host": "127.0.0.1",
                    "port": sink.port,
                    "security": "none",
                    "sender": "syncd@council.example",
                },
                "notify": {"settle_minutes": 0, "morning_report": None},
                "sources": [
                    {
                        "name": "dav",
                        "kind": "caldav",
                        "url": server.url,
                        "username": self.h.user,
                        "password": {"env": "SYNCD_E2E_PW"},
                    }
                ],
                "teams": [
                    {
                        "name": "North",
                        "monitors": ["duty@council.example"],
                        "staff": [
                            {
                                "id": "s1",
                                "name": "Amira Khan",
                                "calendar": {"source": "dav", "locator": "/" + self.cal_a},
                            },
                            {
                                "id": "s2",
                                "name": "Ben Taylor",
                                "calendar": {"source": "dav", "locator": "/" + self.cal_b},
                            },
                        ],
                    }
                ],
            }
        )
        assert self.config.smtp is not None
        self.engine = Engine(
            self.config,
            open_store(self.config.database),
            EmailNotifier(self.config.smtp, lambda _f: ""),
        )
        self.now = T0

    def cycle(self):  # type: ignore[no-untyped-def]
        self.now += timedelta(minutes=1)
        return self.engine.cycle(self.now)

    def open_rules(self, staff: str) -> list[str]:
        return sorted(f.rule for f in self.engine.store.open_findings(staff).values())


def test_findings_appear_resolve_and_move_with_server_edits(
    server: SharedServer, sink: Sink, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = Team(server, sink, tmp_path, monkeypatch)
    try:
        t.h.put(t.cal_a, visit("v1", "HV Patel family", location="12 Acacia Avenue, Derby"))
        t.h.put(t.cal_a, visit("v2", "Team meeting"))  # not a visit
        report = t.cycle()
        assert report.failed == 0 and report.visits == 1
        assert t.open_rules("s1") == ["missing-postcode"]
        assert len(sink.take()) == 1

        # Edit: the worker adds the postcode.
        t.h.put(t.cal_a, visit("v1", "HV Patel family", location="12 Acacia Avenue, Derby DE1 3AB"))
        t.cycle()
        assert t.open_rules("s1") == []
        assert "1 fixed" in sink.take()[0]["Subject"]

        # Create an incomplete entry, then move it to the other worker's calendar.
        t.h.put(t.cal_a, visit("v3", "HV", day=2))
        t.cycle()
        assert t.open_rules("s1") == ["missing-who"]
        sink.take()
        t.h.delete(t.cal_a, "v3")
        t.h.put(t.cal_b, visit("v3", "HV", day=2))
        t.cycle()
        assert t.open_rules("s1") == [] and t.open_rules("s2") == ["missing-who"]
        assert "Ben Taylor" in Sink.text(sink.take()[0])

        # A no-change cycle: one request per calendar, nothing sent.
        report = t.cycle()
        assert report.requests == 2 and report.changed == 0
        assert sink.take() == []

        # Delete: the finding closes without a "fixed" message.
        t.h.delete(t.cal_b, "v3")
        t.h.put(t.cal_b, visit("v4", "HV Jones family", day=5))
        t.cycle()
        assert t.open_rules("s2") == []
    finally:
        t.engine.close()
        t.h.close()


def test_wrong_password_is_a_blind_spot_reported_once_and_recovered(
    server: SharedServer, sink: Sink, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = Team(server, sink, tmp_path, monkeypatch)
    try:
        t.h.put(t.cal_a, visit("v1", "HV Patel family"))
        t.cycle()
        sink.take()
        good = t.h.password
        t.h.break_auth()
        report = t.cycle()
        assert sorted(report.blind) == ["s1", "s2"]
        msgs = sink.take()
        assert len(msgs) == 1 and "NOT BEING TRACKED" in Sink.text(msgs[0])
        t.cycle()
        assert sink.take() == []
        server.set_password(t.h.user, good)
        t.cycle()
        assert "readable again" in sink.take()[0]["Subject"]
        # The visits were never forgotten while blind.
        assert len(t.engine.store.items("s1")) == 1
    finally:
        t.engine.close()
        t.h.close()
