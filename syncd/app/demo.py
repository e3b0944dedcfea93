"""``syncd demo``: the main job on an embedded default.

A Radicale CalDAV server on loopback seeded with the calendars of a small team, one sync
cycle, the flagged entries on screen, and the monitor's email caught by a local SMTP sink.
Everything lives in a temporary folder and is removed afterwards (unless ``--keep``).
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
from datetime import date, datetime, time, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests
from icalendar import Calendar, Event

from syncd.app.daemon import utcnow
from syncd.config import build_notifier, parse_config
from syncd.errors import SyncdError
from syncd.notify.render import when
from syncd.store import open_store
from syncd.track.engine import Engine

TZ = ZoneInfo("Europe/London")
PASSWORD_ENV = "SYNCD_DEMO_CALDAV_PASSWORD"

STAFF: list[dict[str, str]] = [
    {"id": "s1001", "name": "Amira Khan"},
    {"id": "s1002", "name": "Ben Taylor"},
    {"id": "s1003", "name": "Chloe Evans"},
    {"id": "s1004", "name": "Dan Okafor"},
    {"id": "s1005", "name": "Eve Morris"},  # her calendar is missing: a blind spot
]


def _entries(today: date) -> dict[str, list[dict[str, Any]]]:
    """Fictional people and places; the kind of entries a team really writes."""
    d1, d2 = today + timedelta(days=1), today + timedelta(days=2)
    return {
        "s1001": [
            {
                "uid": "amira-1",
                "summary": "HV Patel family",
                "day": d1,
                "start": time(9, 30),
                "end": time(10, 30),
                "location": "12 Acacia Avenue, Derby DE1 3AB",
                "description": "Contact: 07911 123456\nPurpose: CIN statutory visit",
            },
            {
                "uid": "amira-2",
                "summary": "Home visit - Mosaic 4412873",
                "day": d1,
                "start": time(11, 0),
                "end": time(12, 0),
                "location": "Flat 3, 40 Mill Lane, Belper de561aa",
                "description": "Mob 07911 123456. Back to office 12:45",
            },
        ],
        "s1002": [
            {
                "uid": "ben-1",
                "summary": "HV Smith",
                "day": d1,
                "start": time(10, 0),
                "end": time(11, 0),
                "location": "27 Station Road, Ripley",
                "description": "Tel 07400 123456",
            },
            {
                "uid": "ben-2",
                "summary": "Team meeting",
                "day": d1,
                "start": time(13, 0),
                "end": time(14, 0),
                "location": "County Hall",
                "description": "",
            },
        ],
        "s1003": [
            {
                "uid": "chloe-1",
                "summary": "HV",
                "day": d2,
                "start": time(14, 0),
                "end": time(15, 0),
                "location": "5 Park Row, Matlock DE4 3LT",
                "description": "Contact: 07700 900456\nGoing straight home after",
            },
        ],
        "s1004": [
            {
                "uid": "dan-1",
                "summary": "Home visit Jones family",
                "day": d1,
                "all_day": True,
                "location": "8 High Street, Bakewell DE45 1BX",
                "description": "mob 07911 222333, home after",
            },
            {
                "uid": "dan-2",
                "summary": "Visit: Green family",
                "day": d2,
                "start": time(15, 0),
                "end": time(16, 0),
                "location": "2 Church Lane, Wirksworth DE4 4DP",
                "description": "Contact 01332 123456\nReturn: office 16:30",
                "rrule": {"freq": "weekly", "count": 4},
            },
        ],
    }


def _ics(entry: dict[str, Any]) -> bytes:
    cal = Calendar()
    cal.add("prodid", "-//syncd//demo//EN")
    cal.add("version", "2.0")
    ev = Event()
    ev.add("uid", entry["uid"])
    ev.add("summary", entry["summary"])
    ev.add("location", entry["location"])
    if entry["description"]:
        ev.add("description", entry["description"])
    ev.add("dtstamp", datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC")))
    if entry.get("all_day"):
        ev.add("dtstart", entry["day"])
        ev.add("dtend", entry["day"] + timedelta(days=1))
    else:
        ev.add("dtstart", datetime.combine(entry["day"], entry["start"], tzinfo=TZ))
        ev.add("dtend", datetime.combine(entry["day"], entry["end"], tzinfo=TZ))
    if "rrule" in entry:
        ev.add("rrule", entry["rrule"])
    cal.add_component(ev)
    data: bytes = cal.to_ical()
    return data


def _seed(base_url: str, user: str, password: str, today: date) -> None:
    session = requests.Session()
    session.trust_env = False  # loopback only; ignore proxies and CA bundles from the environment
    session.auth = (user, password)
    for staff_id, entries in _entries(today).items():
        col = f"{base_url}{user}/{staff_id}/"
        r = session.request("MKCALENDAR", col, timeout=10)
        r.raise_for_status()
        for entry in entries:
            r = session.put(
                f"{col}{entry['uid']}.ics",
                data=_ics(entry),
                headers={"Content-Type": "text/calendar"},
                timeout=10,
            )
            r.raise_for_status()


class _Sink:
    """An aiosmtpd handler that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(msg, EmailMessage)
        with self.lock:
            self.messages.append(msg)
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run_demo(keep: Path | None = None, now: datetime | None = None) -> int:
    from aiosmtpd.controller import Controller

    from syncd.app.devserver import start_radicale

    # aiosmtpd narrates every SMTP command at INFO; the demo shows the mail itself instead.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    now = now or utcnow()
    today = now.astimezone(TZ).date()
    tmp = tempfile.TemporaryDirectory(prefix="syncd-demo-") if keep is None else None
    root = Path(tmp.name) if tmp else keep
    assert root is not None
    root.mkdir(parents=True, exist_ok=True)
    password = "demo-" + os.urandom(6).hex()
    os.environ[PASSWORD_ENV] = password
    print("syncd demo: starting a Radicale CalDAV server and an SMTP sink on 127.0.0.1 ...")
    server = start_radicale(root / "radicale", {"syncd": password})
    sink = _Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        _seed(server.url, "syncd", password, today)
        cfg = parse_config(
            {
                "database": f"sqlite:///{root / 'syncd.db'}",
                "smtp": {
                    "host": "127.0.0.1",
                    "port": controller.port,
                    "security": "none",
                    "sender": "syncd@council.example",
                },
                # One cycle to show: no settling time (live use holds new findings 15 minutes).
                "notify": {"morning_report": "00:00", "settle_minutes": 0},
                "sources": [
                    {
                        "name": "council-caldav",
                        "kind": "caldav",
                        "url": server.url,
                        "username": "syncd",
                        "password": {"env": PASSWORD_ENV},
                    }
                ],
                "teams": [
                    {
                        "name": "Children in Need (North)",
                        "monitors": ["duty.north@council.example"],
                        "managers": ["manager.north@council.example"],
                        "staff": [
                            {
                                "id": s["id"],
                                "name": s["name"],
                                "calendar": {
                                    "source": "council-caldav",
                                    "locator": f"/syncd/{s['id']}/",
                                },
                            }
                            for s in STAFF
                        ],
                    }
                ],
            },
            origin="demo config",
        )
        store = open_store(cfg.database)
        engine = Engine(cfg, store, build_notifier(cfg))
        print(f"syncd demo: {len(STAFF)} staff calendars of one team; running one sync cycle ...\n")
        report = engine.cycle(now)
        _print_board(engine, now)
        print(
            f"\n{report.calendars} calendars read ({report.failed} unreadable), {report.visits} visits checked, "
            f"{report.new_findings} findings, {report.requests} CalDAV requests.\n"
        )
        with sink.lock:
            messages = list(sink.messages)
        print(f"The SMTP sink caught {len(messages)} email(s) for the monitor. The first one:\n")
        for msg in messages[:1]:
            print("-" * 78)
            for h in ("From", "To", "Subject"):
                print(f"{h}: {msg[h]}")
            print()
            body = msg.get_body(preferencelist=("plain",))
            print(body.get_content() if body is not None else "")
            print("-" * 78)
        for msg in messages[1:]:
            print(f"(also sent) Subject: {msg['Subject']}")
        engine.close()
        return 0
    except SyncdError:
        raise
    finally:
        controller.stop()
        server.stop()
        if tmp is not None:
            tmp.cleanup()


def _print_board(engine: Engine, now: datetime) -> None:
    from syncd.domain.tracking import window_for

    window = window_for(now, engine.tz, engine.config.lookahead_days)
    names = {k: s.name for k, (_t, s) in engine.staff.items()}
    rows = [("WHEN", "WORKER", "ENTRY", "RULE", "WHAT TO FIX")]
    for f in engine.store.all_open_findings(window.start, window.end):
        rows.append(
            (when(f.start), names.get(f.calendar, f.calendar), f.summary, f.rule, f.message)
        )
    blind = [
        names[s.key]
        for s in engine.store.calendars()
        if s.blind_since is not None and s.key in names
    ]
    print("Visit entries the monitor must get fixed:\n")
    if len(rows) == 1:
        print("  (none)")
    else:
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            print("  " + "  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4])
    if blind:
        print(f"\nNOT BEING TRACKED (calendar unreadable): {', '.join(blind)}")
