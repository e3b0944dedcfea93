"""The daemon's cycle end to end on simulated time: memory source -> store -> real SMTP."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from syncd.config import Config, parse_config
from syncd.errors import AuthError, SourceError
from syncd.notify.email import EmailNotifier
from syncd.sources.memory import MemorySource
from syncd.store import open_store
from syncd.track.engine import Engine
from tests.harness import EventSpec
from tests.harness.ical_build import spec_to_ical
from tests.smtp_sink import Sink, smtp_sink

LON = ZoneInfo("Europe/London")
# A Tuesday in winter, 06:00 local: before the 07:30 morning report.
T0 = datetime(2026, 12, 1, 6, 0, tzinfo=LON).astimezone(UTC)

GOOD_DESC = "Contact: 07911 123456\nGoing straight home after"


def visit(
    uid: str,
    summary: str,
    day: int,
    hour: int,
    location: str = "12 Acacia Avenue, Derby DE1 3AB",
    description: str = GOOD_DESC,
) -> EventSpec:
    start = datetime(2026, 12, 1 + day, hour, 0, tzinfo=LON)
    return EventSpec(
        uid=uid,
        summary=summary,
        start=start,
        end=start + timedelta(hours=1),
        location=location,
        description=description,
    )


@pytest.fixture
def sink() -> Iterator[Sink]:
    with smtp_sink() as s:
        yield s


def make_config(tmp_path: Path, sink: Sink, **extra: object) -> Config:
    data: dict[str, object] = {
        "database": f"sqlite:///{tmp_path / 'state.db'}",
        "smtp": {
            "host": "127.0.0.1",
            "port": sink.port,
            "security": "none",
            "sender": "syncd@council.example",
        },
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
                        "email": "amira@council.example",
                        "calendar": {"source": "mem", "locator": "amira"},
                    },
                    {
                        "id": "s2",
                        "name": "Ben Taylor",
                        "calendar": {"source": "mem", "locator": "ben"},
                    },
                ],
            }
        ],
    }
    data.update(extra)
    return parse_config(data)


class World:
    """A team, its calendars on a memory 'server', the real store and a real SMTP sink."""

    def __init__(self, tmp_path: Path, sink: Sink, **extra: object):
        self.tmp_path = tmp_path
        self.sink = sink
        self.config = make_config(tmp_path, sink, **extra)
        self.server = MemorySource()
        self.server.calendars = {"amira": {}, "ben": {}}
        self.now = T0
        self.engine = self.restart()

    def restart(self) -> Engine:
        assert self.config.smtp is not None
        self.engine = Engine(
            self.config,
            open_store(self.config.database),
            EmailNotifier(self.config.smtp, lambda _f: ""),
            sources={"mem": self.server},
        )
        return self.engine

    def put(self, locator: str, spec: EventSpec) -> None:
        self.server.put(locator, f"{spec.uid}.ics", spec_to_ical(spec))

    def cycle(self, advance: timedelta = timedelta(minutes=1)):  # type: ignore[no-untyped-def]
        self.now += advance
        return self.engine.cycle(self.now)


def test_new_findings_reach_the_monitor_once_as_one_digest(tmp_path: Path, sink: Sink) -> None:
    w = World(tmp_path, sink)
    w.put(
        "amira", visit("a1", "HV Patel family", 1, 10, location="12 Acacia Avenue, Derby")
    )  # no postcode
    w.put("amira", visit("a2", "HV", 2, 10))  # nobody named
    w.put(
        "ben", visit("b1", "HV Smith", 1, 11, description="Tel 07400 123456")
    )  # last of day, no return
    report = w.cycle()
    assert report.new_findings == 3
    msgs = sink.take()
    assert len(msgs) == 1
    text = Sink.text(msgs[0])
    assert msgs[0]["To"] == "duty@council.example"
    assert "3 visit entries incomplete" in msgs[0]["Subject"]
    assert "Amira Khan" in text and "Ben Taylor" in text and "HV Patel family" in text
    # Reported once: the next cycles are silent.
    w.cycle()
    w.cycle()
    assert sink.take() == []


def test_a_fix_is_noticed_and_reported_as_fixed(tmp_path: Path, sink: Sink) -> None:
    w = World(tmp_path, sink)
    w.put("amira", visit("a1", "HV Patel family", 1, 10, location="12 Acacia Avenue, Derby"))
    w.cycle()
    sink.take()
    w.put(
        "amira", visit("a1", "HV Patel family", 1, 10, location="12 Acacia Avenue, Derby DE1 3AB")
    )
    report = w.cycle()
    assert report.resolved_findings == 1
    msgs = sink.take()
    assert len(msgs) == 1 and "1 fixed" in msgs[0]["Subject"]
    assert w.engine.store.open_findings("s1") == {}


def test_deleted_entry_closes_its_findings_quietly(tmp_path: Path, sink: Sink) -> None:
    w = World(tmp_path, sink)
    w.put("amira", visit("a1", "HV", 1, 10))
    w.cycle()
    sink.take()
    w.server.delete("amira", "a1.ics")
    w.put("amira", visit("a2", "HV Jones", 3, 10))  # keeps the calendar non-empty
    w.cycle()
    assert w.engine.store.open_findings("s1") == {}
    assert sink.take() == []


def test_transient_failures_become_a_blind_spot_once_then_recover(
    tmp_path: Path, sink: Sink
) -> None:
    w = World(tmp_path, sink)
    w.put("amira", visit("a1", "HV Patel family", 1, 10))
    w.cycle()
    sink.take()
    w.server.fail = SourceError("mem: connection refused")
    w.cycle()
    w.cycle()
    assert sink.take() == []  # two blips are not yet a blind spot
    report = w.cycle()
    assert report.blind == ["s1", "s2"]
    msgs = sink.take()
    assert len(msgs) == 1 and "not being tracked" in msgs[0]["Subject"]
    assert "Amira Khan" in Sink.text(msgs[0]) and "NOT BEING TRACKED" in Sink.text(msgs[0])
    w.cycle()
    assert sink.take() == []  # told once
    w.server.fail = None
    w.cycle()
    msgs = sink.take()
    assert len(msgs) == 1 and "readable again" in msgs[0]["Subject"]


def test_auth_failure_is_a_blind_spot_at_once(tmp_path: Path, sink: Sink) -> None:
    w = World(tmp_path, sink)
    w.server.fail = AuthError("mem: 401 Unauthorized")
    report = w.cycle()
    assert set(report.blind) == {"s1", "s2"}
    assert "not being tracked" in sink.take()[0]["Subject"]


def test_a_calendar_that_suddenly_returns_nothing_keeps_its_visits(
    tmp_path: Path, sink: Sink
) -> None:
    w = World(tmp_path, sink, empty_grace_minutes=60)
    w.put("amira", visit("a1", "HV", 1, 10))
    w.cycle()
    sink.take()
    w.server.calendars["amira"] = {}
    w.server.expire_tokens()  # the server lost its state and lists nothing
    w.cycle()
    msgs = sink.take()
    assert len(msgs) == 1 and "suddenly returned no entries" in Sink.text(msgs[0])
    assert len(w.engine.store.items("s1")) == 1
    assert len(w.engine.store.open_findings("s1")) == 1
    w.cycle(timedelta(minutes=30))
    assert len(w.engine.store.items("s1")) == 1
    assert sink.take() == []
    w.cycle(timedelta(minutes=31))
    assert w.engine.store.items("s1") == []
    assert "now empty" in sink.take()[0]["Subject"]


def test_smtp_outage_loses_nothing_and_sends_nothing_twice(tmp_path: Path, sink: Sink) -> None:
    w = World(tmp_path, sink)
    w.put("amira", visit("a1", "HV", 1, 10))
    sink.reply = "451 4.3.0 try again later"
    report = w.cycle()
    assert report.send_failures == 1 and report.sent == 0
    report = w.cycle(timedelta(seconds=30))  # inside the retry delay: not tried again yet
    assert report.send_failures == 0
    sink.reply = None
    w.engine.close()
    w.restart()  # and the daemon restarts in between
    w.cycle(timedelta(minutes=2))
    msgs = sink.take()
    assert len(msgs) == 1 and "HV" in Sink.text(msgs[0])
    w.cycle(timedelta(minutes=5))
    assert sink.take() == []


def test_permanent_smtp_refusal_is_not_retried_forever(
    tmp_path: Path, sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    w = World(tmp_path, sink)
    w.put("amira", visit("a1", "HV", 1, 10))
    sink.reply = "554 5.7.1 rejected"
    with caplog.at_level(logging.ERROR):
        w.cycle()
    assert any("giving up" in r.getMessage() for r in caplog.records)
    assert w.engine.store.pending_count() == 0


def test_restart_does_not_repeat_findings(tmp_path: Path, sink: Sink) -> None:
    w = World(tmp_path, sink)
    w.put("amira", visit("a1", "HV", 1, 10))
    w.cycle()
    assert len(sink.take()) == 1
    w.engine.close()
    w.restart()
    w.cycle()
    w.cycle(timedelta(hours=1))
    assert sink.take() == []


def test_morning_report_once_a_day_with_today_and_tomorrow(tmp_path: Path, sink: Sink) -> None:
    w = World(tmp_path, sink)
    w.put("amira", visit("a1", "HV", 0, 14))  # today
    w.put("ben", visit("b1", "HV", 1, 9))  # tomorrow
    w.put("ben", visit("b2", "HV", 5, 9))  # later: not in the morning report
    w.cycle()
    sink.take()
    w.cycle(timedelta(hours=1, minutes=29))  # 07:30 local
    msgs = sink.take()
    assert len(msgs) == 1 and "morning report" in msgs[0]["Subject"]
    text = Sink.text(msgs[0])
    assert "Amira Khan" in text and "Ben Taylor" in text
    assert text.count("HV") == 2
    w.engine.close()
    w.restart()
    w.cycle(timedelta(hours=2))
    assert sink.take() == []  # once a day, across restarts
    w.cycle(timedelta(hours=24))
    assert any("morning report" in m["Subject"] for m in sink.take())


def test_day_rollover_closes_past_findings_without_calling_them_fixed(
    tmp_path: Path, sink: Sink
) -> None:
    w = World(tmp_path, sink, notify={"settle_minutes": 0, "morning_report": None})
    w.put("amira", visit("a1", "HV", 0, 10))
    w.put("amira", visit("a2", "HV Smith", 3, 10))
    w.cycle()
    sink.take()
    w.cycle(timedelta(days=1))
    assert sink.take() == []
    assert [f.rule for f in w.engine.store.open_findings("s1").values()] == []


def test_nudges_go_to_the_worker_when_enabled(tmp_path: Path, sink: Sink) -> None:
    w = World(
        tmp_path, sink, notify={"settle_minutes": 0, "morning_report": None, "nudge_staff": True}
    )
    w.put("amira", visit("a1", "HV", 1, 10, location="12 Acacia Avenue"))
    w.cycle()
    msgs = sink.take()
    to = sorted(m["X-Envelope-To"] for m in msgs)
    assert to == ["amira@council.example", "duty@council.example"]
    nudge = next(m for m in msgs if m["X-Envelope-To"] == "amira@council.example")
    assert "Please complete 1 visit entry" in nudge["Subject"]


def test_no_personal_data_in_logs_at_info(
    tmp_path: Path, sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    w = World(tmp_path, sink)
    w.put("amira", visit("a1", "HV Patel family", 1, 10, location="12 Acacia Avenue, Derby"))
    w.server.fail = None
    with caplog.at_level(logging.INFO):
        w.cycle()
        w.server.fail = AuthError("mem: 401 Unauthorized")
        w.cycle()
    logged = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    for secret in ("Patel", "Acacia", "07911", "Amira", "Khan", "Derby"):
        assert secret not in logged
    assert "s1" in logged


def test_html_part_escapes_entry_text(tmp_path: Path, sink: Sink) -> None:
    w = World(tmp_path, sink)
    w.put("amira", visit("a1", "HV <script>alert(1)</script>", 1, 10, location="nowhere"))
    w.cycle()
    html = Sink.html(sink.take()[0])
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_a_finding_fixed_then_broken_again_is_reported_again_once(
    tmp_path: Path, sink: Sink
) -> None:
    w = World(tmp_path, sink)
    broken = visit("a1", "HV Patel family", 1, 10, location="12 Acacia Avenue, Derby")
    w.put("amira", broken)
    w.cycle()
    w.put("amira", visit("a1", "HV Patel family", 1, 10))
    w.cycle()
    sink.take()
    w.put("amira", broken)
    w.cycle()
    msgs = sink.take()
    assert len(msgs) == 1 and "1 visit entry incomplete" in msgs[0]["Subject"]
    assert [f.rule for f in w.engine.store.open_findings("s1").values()] == ["missing-postcode"]
    w.cycle()
    assert sink.take() == []


def test_a_calendar_that_comes_back_within_the_grace_is_announced(
    tmp_path: Path, sink: Sink
) -> None:
    w = World(tmp_path, sink, empty_grace_minutes=60)
    w.put("amira", visit("a1", "HV", 1, 10))
    w.cycle()
    saved = dict(w.server.calendars["amira"])
    w.server.calendars["amira"] = {}
    w.server.expire_tokens()
    w.cycle()
    sink.take()
    w.server.calendars["amira"] = saved
    w.server.expire_tokens()
    w.cycle()
    msgs = sink.take()
    assert len(msgs) == 1 and "entries back" in Sink.text(msgs[0])
    assert len(w.engine.store.open_findings("s1")) == 1  # the held finding never closed


def test_an_unreadable_entry_stays_in_every_morning_report_until_fixed(
    tmp_path: Path, sink: Sink
) -> None:
    w = World(tmp_path, sink)
    broken = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:bad1\r\nSUMMARY:HV Smith\r\n"
        "DTSTART:garbage\r\nDTEND:20261202T110000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    w.server.put("amira", "bad1.ics", broken)
    w.put("amira", visit("a1", "HV Patel family", 3, 10))
    w.cycle()
    first = Sink.text(sink.take()[0])
    assert "HV Smith" in first and "cannot be read" in first
    for day in range(3):
        w.cycle(timedelta(hours=1, minutes=29) if day == 0 else timedelta(hours=24))
        morning = [m for m in sink.take() if "morning report" in m["Subject"]]
        assert len(morning) == 1, day
        assert "HV Smith" in Sink.text(morning[0]), day
    assert [f.rule for f in w.engine.store.open_findings("s1").values()] == ["unreadable-entry"]
