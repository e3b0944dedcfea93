"""What the emails say (issue 8 items 1, 2, 7 and 8), through the engine on simulated time:
memory source -> real store -> MemoryNotifier.

Times are the team's (Europe/London) whatever zone the source gave; a morning report never
claims completeness for calendars it did not read; visits already begun are not "to complete
before the visit"; problems are listed in the rule table's order; a new finding settles
before it is announced; the HTML is one block per visit with the worker's phone or email.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from syncd.config import parse_config
from syncd.domain.events import (
    MorningReport,
    NewFinding,
    ReportBlind,
    ReportLine,
    from_json,
    to_json,
)
from syncd.domain.model import Occurrence
from syncd.domain.rules import MESSAGES, RULE_IDS
from syncd.errors import SourceError
from syncd.notify.base import Message
from syncd.notify.memory import MemoryNotifier
from syncd.notify.render import render_digest, render_morning
from syncd.sources.memory import MemorySource
from syncd.store import open_store
from syncd.track.engine import Engine

LON = ZoneInfo("Europe/London")
BERLIN = ZoneInfo("Europe/Berlin")
GOOD_DESC = "Contact: 07911 123456\nGoing straight home after"


class World:
    def __init__(self, tmp_path: Path, now: datetime, **notify: object) -> None:
        self.config = parse_config(
            {
                "database": f"sqlite:///{tmp_path / 'state.db'}",
                "notify": {"morning_report": None, **notify},
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
                                "phone": "07700 900123",
                                "calendar": {"source": "mem", "locator": "amira"},
                            },
                            {
                                "id": "s2",
                                "name": "Ben Taylor",
                                "email": "ben@council.example",
                                "calendar": {"source": "mem", "locator": "ben"},
                            },
                        ],
                    }
                ],
            }
        )
        self.server = MemorySource()
        self.server.calendars = {"amira": {}, "ben": {}}
        self.notifier = MemoryNotifier()
        self.now = now
        self.engine = self.restart()

    def restart(self) -> Engine:
        self.engine = Engine(
            self.config,
            open_store(self.config.database),
            self.notifier,
            sources={"mem": self.server},
        )
        return self.engine

    def put(
        self,
        locator: str,
        uid: str,
        start: datetime,
        location: str = "12 Acacia Avenue, Derby",  # no postcode
        description: str = GOOD_DESC,
        summary: str = "HV Patel family",
    ) -> None:
        """An occurrence as Graph (UTC) or EWS (the entry's own zone) hands it over."""
        occ = Occurrence(
            uid=uid,
            start=start,
            end=start + timedelta(hours=1),
            summary=summary,
            location=location,
            description=description,
        )
        self.server.put(locator, uid, occ.to_json(), kind="occurrence")

    def cycle(self, advance: timedelta = timedelta(minutes=1)) -> list[Message]:
        self.now += advance
        before = len(self.notifier.sent)
        self.engine.cycle(self.now)
        return self.notifier.sent[before:]


def monitor(msgs: list[Message]) -> list[Message]:
    return [m for m in msgs if m.to == ("duty@council.example",)]


# --- 8.1 times in the team's zone --------------------------------------------------------


def test_a_utc_start_in_summer_is_shown_an_hour_later(tmp_path: Path) -> None:
    w = World(tmp_path, datetime(2026, 7, 14, 5, 0, tzinfo=UTC), settle_minutes=0)
    w.put("amira", "a1", datetime(2026, 7, 14, 13, 0, tzinfo=UTC))
    (digest,) = w.cycle()
    assert "Tue 14 Jul 14:00" in digest.text
    assert "Tue 14 Jul 14:00" in digest.html
    assert "13:00" not in digest.text


def test_a_utc_start_in_winter_is_shown_as_it_is(tmp_path: Path) -> None:
    w = World(tmp_path, datetime(2027, 1, 12, 6, 0, tzinfo=UTC), settle_minutes=0)
    w.put("amira", "a1", datetime(2027, 1, 12, 13, 0, tzinfo=UTC))
    (digest,) = w.cycle()
    assert "Tue 12 Jan 13:00" in digest.text


def test_an_entry_in_berlin_time_is_shown_in_london_time_in_digest_report_and_fix(
    tmp_path: Path,
) -> None:
    """W. Europe Standard Time 15:00 in summer is 14:00 in London, everywhere it is shown."""
    w = World(tmp_path, datetime(2026, 7, 14, 5, 0, tzinfo=UTC), morning_report="07:30:00")
    w.put("amira", "a1", datetime(2026, 7, 14, 15, 0, tzinfo=BERLIN))
    w.cycle()
    msgs = w.cycle(timedelta(hours=2))  # past the settling time and the morning report
    digest = next(m for m in msgs if "morning report" not in m.subject)
    morning = next(m for m in msgs if "morning report" in m.subject)
    for m in (digest, morning):
        assert "Tue 14 Jul 14:00" in m.text, m.text
        assert "15:00" not in m.text
    w.put("amira", "a1", datetime(2026, 7, 14, 15, 0, tzinfo=BERLIN), "12 Acacia Ave, DE1 3AB")
    (fixed,) = w.cycle()
    assert "Fixed" in fixed.text and "Tue 14 Jul 14:00" in fixed.text


# --- 8.2 no false reassurance -------------------------------------------------------------


def test_morning_report_with_every_calendar_unreadable_claims_nothing(tmp_path: Path) -> None:
    w = World(tmp_path, datetime(2026, 12, 1, 7, 0, tzinfo=UTC), morning_report="07:30:00")
    w.server.fail = SourceError("connection refused")
    for _ in range(5):
        w.cycle()
    msgs = w.cycle(timedelta(minutes=30))
    (morning,) = [m for m in msgs if "morning report" in m.subject]
    assert "all visit entries complete" not in morning.subject
    assert "Every visit entry" not in morning.text + morning.html
    assert re.search(r"morning report, 2 calendar\(s\) not read", morning.subject), morning.subject
    assert "0 of 2 calendar(s) read" in morning.text
    # Blind spots come first in the body too.
    assert morning.text.index("NOT BEING TRACKED") < morning.text.index("visit(s) today") or (
        morning.text.index("NOT BEING TRACKED") < morning.text.index("No incomplete entries")
    )
    assert "Amira Khan" in morning.text and "Ben Taylor" in morning.text


def test_morning_report_with_one_blind_calendar_says_how_many_were_read() -> None:
    report = MorningReport(
        day=date(2026, 12, 1),
        findings=(),
        blind=(ReportBlind("Ben Taylor", datetime(2026, 11, 30, 9, 0, tzinfo=LON)),),
        visits=4,
        calendars=2,
    )
    msg = render_morning("North", report, to=["duty@council.example"])
    assert msg.subject == (
        "[syncd] North: morning report, 1 calendar(s) not read, "
        "no incomplete entries in the 1 of 2 calendars read"
    )
    assert "1 of 2 calendar(s) read" in msg.text
    assert "Every visit entry" not in msg.text + msg.html
    assert msg.html.index("Not being tracked") < msg.html.index("visit(s) today")


def test_morning_report_with_everything_read_and_complete_says_so() -> None:
    report = MorningReport(day=date(2026, 12, 1), findings=(), blind=(), visits=4, calendars=2)
    msg = render_morning("North", report, to=["duty@council.example"])
    assert msg.subject.endswith("all visit entries complete")
    assert "Every visit entry for today and tomorrow" in msg.text


def test_a_report_stored_before_calendars_were_counted_still_decodes_and_claims_nothing() -> None:
    old = (
        '{"v": 1, "kind": "morning", "day": "2026-12-01", "findings": [], "visits": 0,'
        ' "blind": [{"staff_name": "Ben Taylor", "since": "2026-11-30T09:00:00+00:00"}]}'
    )
    report = from_json(old)
    assert isinstance(report, MorningReport) and report.calendars == 0
    msg = render_morning("North", report, to=["duty@council.example"])
    assert "complete" not in msg.subject
    assert from_json(to_json(report)) == report


def test_old_finding_payloads_still_decode() -> None:
    old = (
        '{"staff_id": "s1", "staff_name": "Amira Khan", "rule": "missing-postcode",'
        ' "summary": "HV", "start": "2026-12-01T10:00:00+00:00", "message": "No postcode"}'
    )
    event = from_json(old, "finding")
    assert isinstance(event, NewFinding) and event.contact == "" and not event.started


# --- 8.7 the past, the order, settling ----------------------------------------------------


def test_a_visit_already_begun_is_not_to_be_completed_before_the_visit(tmp_path: Path) -> None:
    w = World(tmp_path, datetime(2026, 12, 1, 10, 0, tzinfo=UTC), settle_minutes=0)
    w.put("amira", "early", datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    w.put("amira", "later", datetime(2026, 12, 1, 15, 0, tzinfo=UTC), summary="HV Smith")
    (digest,) = w.cycle()
    before, _, after = digest.text.partition("already under way or over")
    assert "HV Smith" in before and "HV Patel family" not in before
    assert "HV Patel family" in after and "HV Smith" not in after


def test_problems_are_listed_in_rule_table_order_in_digest_and_morning_report(
    tmp_path: Path,
) -> None:
    w = World(
        tmp_path,
        datetime(2026, 12, 1, 6, 0, tzinfo=UTC),
        settle_minutes=0,
        morning_report="07:30:00",
    )
    # Nobody named, no postcode, no contact number, no return: several rules at once.
    w.put("amira", "a1", datetime(2026, 12, 1, 15, 0, tzinfo=UTC), description="", summary="HV")
    (digest,) = w.cycle()
    (morning,) = w.cycle(timedelta(hours=2))
    assert "morning report" in morning.subject

    def bullets(text: str) -> list[str]:
        return re.findall(r"^ {6}\* (.*)$", text, re.M)

    assert len(bullets(digest.text)) >= 3
    assert bullets(digest.text) == bullets(morning.text)
    ranks = [
        next(i for i, r in enumerate(RULE_IDS) if MESSAGES[r] == b) for b in bullets(digest.text)
    ]
    assert ranks == sorted(ranks)


def test_a_new_finding_waits_for_the_settling_time_then_is_announced(tmp_path: Path) -> None:
    w = World(tmp_path, datetime(2026, 12, 1, 8, 0, tzinfo=UTC))  # default 15 minutes
    w.put("amira", "a1", datetime(2026, 12, 1, 15, 0, tzinfo=UTC))
    assert w.cycle() == []
    assert w.cycle(timedelta(minutes=10)) == []
    w.restart()  # a held finding survives a restart: nothing is lost
    (digest,) = w.cycle(timedelta(minutes=5))
    assert "HV Patel family" in digest.text
    assert w.cycle(timedelta(minutes=30)) == []  # announced once


def test_a_finding_fixed_while_settling_is_never_mentioned(tmp_path: Path) -> None:
    w = World(tmp_path, datetime(2026, 12, 1, 8, 0, tzinfo=UTC), nudge_staff=True)
    w.put("amira", "a1", datetime(2026, 12, 1, 15, 0, tzinfo=UTC))
    assert w.cycle() == []
    w.put("amira", "a1", datetime(2026, 12, 1, 15, 0, tzinfo=UTC), "12 Acacia Ave, DE1 3AB")
    assert w.cycle(timedelta(minutes=5)) == []
    for _ in range(4):
        assert w.cycle(timedelta(minutes=15)) == []  # neither "incomplete" nor "fixed"


def test_a_visit_starting_within_the_settling_time_is_announced_at_once(tmp_path: Path) -> None:
    w = World(tmp_path, datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
    w.put("amira", "soon", datetime(2026, 12, 1, 8, 10, tzinfo=UTC))
    (digest,) = monitor(w.cycle())
    assert "HV Patel family" in digest.text


def test_a_fix_after_the_announcement_is_reported_as_fixed(tmp_path: Path) -> None:
    w = World(tmp_path, datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
    w.put("amira", "a1", datetime(2026, 12, 1, 15, 0, tzinfo=UTC))
    w.cycle()
    (digest,) = w.cycle(timedelta(minutes=20))
    assert "incomplete" in digest.subject
    w.put("amira", "a1", datetime(2026, 12, 1, 15, 0, tzinfo=UTC), "12 Acacia Ave, DE1 3AB")
    (fixed,) = w.cycle()
    assert "Fixed since the last update" in fixed.text


# --- 8.8 phone-sized emails ---------------------------------------------------------------


def test_html_is_one_block_per_visit_with_the_workers_phone_or_email(tmp_path: Path) -> None:
    w = World(tmp_path, datetime(2026, 12, 1, 8, 0, tzinfo=UTC), settle_minutes=0)
    w.put("amira", "a1", datetime(2026, 12, 1, 15, 0, tzinfo=UTC))
    w.put("ben", "b1", datetime(2026, 12, 1, 16, 0, tzinfo=UTC), summary="HV Smith")
    (digest,) = w.cycle()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in digest.html
    assert "<table" not in digest.html
    assert 'href="tel:07700900123"' in digest.html  # Amira has a phone
    assert 'href="mailto:ben@council.example"' in digest.html  # Ben has only an email
    assert "07700 900123" in digest.text and "ben@council.example" in digest.text


def test_morning_report_html_is_phone_sized() -> None:
    line = ReportLine(
        "s1",
        "Amira Khan",
        "missing-postcode",
        "HV",
        datetime(2026, 12, 1, 10, 0, tzinfo=LON),
        "No postcode",
        contact="07700 900123",
    )
    report = MorningReport(date(2026, 12, 1), (line,), (), 1, calendars=1)
    msg = render_morning("North", report, to=["duty@council.example"])
    assert 'name="viewport"' in msg.html and "<table" not in msg.html
    assert "07700 900123" in msg.html
    digest = render_digest(
        "North",
        [NewFinding("s1", "Amira Khan", "missing-postcode", "HV", line.start, "No postcode")],
        to=["duty@council.example"],
    )
    assert 'name="viewport"' in digest.html
