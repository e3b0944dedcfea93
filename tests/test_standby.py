"""One active sender per PostgreSQL store: a second daemon stands by on a session advisory
lock, keeps systemd's watchdog fed, and takes over when the active one's session ends.

Real PostgreSQL (tests/pg.py; skipped without its binaries), real `syncd run` processes
killed with SIGKILL, a real SMTP sink. Waits are on conditions with generous timeouts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from syncd.app.daemon import Daemon
from syncd.app.lock import PgAdvisoryLock, sender_lock
from syncd.config import parse_config
from syncd.notify.memory import MemoryNotifier
from syncd.sources.memory import MemorySource
from syncd.store import open_store
from syncd.track.engine import Engine
from tests import pg
from tests.harness import EventSpec
from tests.harness.ical_build import spec_to_ical
from tests.smtp_sink import Sink, smtp_sink
from tests.test_engine import T0, visit

pytestmark = pytest.mark.skipif(
    not pg.available(), reason="PostgreSQL server binaries not installed"
)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with pg.postgres() as url:
        yield url


@pytest.fixture
def store_url(pg_url: str) -> Iterator[str]:
    """A fresh schema-less store: drop everything the previous test left."""
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    yield pg_url


def wait_for(cond: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        threading.Event().wait(0.05)
    return cond()


def end_lock_sessions(url: str) -> int:
    """What a crash or a network cut does to the active daemon's lock session."""
    engine = create_engine(url)
    with engine.begin() as conn:
        ended = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'syncd sender lock'"
            )
        ).scalar_one()
    engine.dispose()
    return int(ended)


def test_the_advisory_lock_is_exclusive_and_freed_when_its_session_ends(store_url: str) -> None:
    a, b = sender_lock(store_url), sender_lock(store_url)
    assert isinstance(a, PgAdvisoryLock) and isinstance(b, PgAdvisoryLock) and a.standby
    try:
        assert a.try_acquire() and a.held()
        assert not b.try_acquire() and not b.held()
        assert end_lock_sessions(store_url) == 1  # only the holder keeps a session
        assert not a.held()  # asked of the server, not remembered
        assert b.try_acquire() and b.held()
        assert not a.try_acquire()
        b.release()
        assert a.try_acquire()
    finally:
        a.release()
        b.release()


def engine_on(url: str, server: MemorySource, notifier: MemoryNotifier) -> Engine:
    cfg = parse_config(
        {
            "database": url,
            "notify": {"settle_minutes": 0, "morning_report": None},
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
                        }
                    ],
                }
            ],
        }
    )
    return Engine(cfg, open_store(cfg.database), notifier, sources={"mem": server})


def test_a_standby_daemon_pings_the_watchdog_sends_nothing_and_takes_over(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    server = MemorySource()
    server.calendars = {"amira": {}}
    server.put("amira", "a1.ics", spec_to_ical(visit("a1", "HV Patel", 1, 10, location="Derby")))
    sent_a, sent_b = MemoryNotifier(), MemoryNotifier()
    now = [T0 + timedelta(minutes=1)]
    lock_a, lock_b = PgAdvisoryLock(store_url), PgAdvisoryLock(store_url)
    active = Daemon(
        engine_on(store_url, server, sent_a), interval=3600, clock=lambda: now[0], lock=lock_a
    )
    notes: list[str] = []
    standby = Daemon(
        engine_on(store_url, server, sent_b),
        interval=3600,
        clock=lambda: now[0],
        notify=notes.append,
        lock=lock_b,
    )
    runner = threading.Thread(target=standby.run, daemon=True)
    try:
        assert lock_a.try_acquire()
        active.run_cycle()
        assert active.cycles == 1 and len(sent_a.sent) == 1

        runner.start()
        assert wait_for(lambda: notes.count("WATCHDOG=1") >= 2)  # fed while standing by
        assert "READY=1" in notes and any(n.startswith("STATUS=standby") for n in notes)
        assert [r.getMessage() for r in caplog.records].count(
            "standby: another syncd is active on this store; taking over when it stops"
        ) == 1
        assert standby.cycles == 0 and sent_b.sent == []

        # New work, then the active daemon dies: its session (and lock) go with it.
        server.put("amira", "a2.ics", spec_to_ical(visit("a2", "HV Jones", 2, 10, location="")))
        now[0] += timedelta(minutes=5)
        lock_a.release()
        assert wait_for(lambda: standby.cycles == 1)
        assert len(sent_b.sent) == 1 and len(sent_a.sent) == 1  # the new finding, once
        keys = [m.key for m in sent_a.sent + sent_b.sent]
        assert None not in keys and len(set(keys)) == 2
        assert "standby over: this syncd is now the active one" in caplog.text

        # The active daemon that loses its session stops instead of sending beside another.
        assert end_lock_sessions(store_url) == 1
        server.put("amira", "a3.ics", spec_to_ical(visit("a3", "HV Ahmed", 3, 10, location="")))
        standby.run_cycle()
        assert standby.cycles == 1 and standby.lost_lock and len(sent_b.sent) == 1
        runner.join(30)
        assert not runner.is_alive() and "STOPPING=1" in notes
        assert "lost the sender lock" in caplog.text
    finally:
        standby.stop()
        if runner.is_alive():
            runner.join(30)
        lock_a.release()
        lock_b.release()
        active.engine.close()


# --- two real `syncd run` processes ------------------------------------------------------


LON = ZoneInfo("Europe/London")


def ics(uid: str, summary: str) -> str:
    day = (datetime.now(UTC) + timedelta(days=2)).astimezone(LON).date()
    start = datetime(day.year, day.month, day.day, 10, tzinfo=LON)
    spec = EventSpec(
        uid=uid,
        summary=summary,
        start=start,
        end=start + timedelta(hours=1),
        location="12 Acacia Avenue, Derby",  # no postcode: one finding
        description="Contact: 07911 123456\nGoing straight home after",
    )
    return spec_to_ical(spec)


class Run:
    """One `syncd run`, its stderr gathered by a thread (so a full pipe never blocks it)."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "syncd", "run", "--config", str(config)],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._reader.join(30)


def write_config(tmp_path: Path, url: str, sink: Sink, calendar: Path) -> Path:
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(
        f'database = "{url}"\npoll_interval = 10\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {sink.port}\nsecurity = "none"\n'
        'sender = "syncd@council.example"\n'
        '[notify]\nmorning_report = "00:00:00"\nsettle_minutes = 0\n'
        '[[sources]]\nname = "files"\nkind = "ics"\n'
        '[[teams]]\nname = "North"\nmonitors = ["duty@council.example"]\n'
        f'[[teams.staff]]\nid = "s1"\nname = "Amira Khan"\n'
        f'calendar = {{ source = "files", locator = "{calendar}" }}\n'
    )
    return cfg


def test_two_syncd_run_on_one_store_one_sends_the_other_takes_over_after_kill_9(
    store_url: str, tmp_path: Path
) -> None:
    calendar = tmp_path / "amira.ics"
    calendar.write_text(ics("v1", "HV Patel family"))
    runs: list[Run] = []
    with smtp_sink() as sink:
        got: list[Any] = []

        def messages(n: int) -> Callable[[], bool]:
            return lambda: bool(got.extend(sink.take()) or len(got) >= n)

        cfg = write_config(tmp_path, store_url, sink, calendar)
        try:
            first = Run(cfg)
            runs.append(first)
            assert wait_for(messages(1)), first.lines
            assert wait_for(lambda: first.said("cycle done")), first.lines

            second = Run(cfg)
            runs.append(second)
            assert wait_for(lambda: second.said("standby: another syncd is active")), second.lines
            assert second.proc.poll() is None
            assert not second.said("cycle done")

            first.proc.kill()  # SIGKILL: no clean-up; the server ends its session
            first.proc.wait(30)
            assert wait_for(lambda: second.said("now the active one")), second.lines
            assert wait_for(lambda: second.said("cycle done")), second.lines
            calendar.write_text(ics("v2", "HV Jones family"))
            assert wait_for(messages(2)), second.lines
        finally:
            for run in runs:
                run.stop()
        got.extend(sink.take())
    # One digest per change, each sent once, each with its own stable Message-ID.
    ids = [m["Message-ID"] for m in got]
    assert len(got) == 2 and len(set(ids)) == 2, [m["Subject"] for m in got]
    for run in runs:
        assert not [line for line in run.lines if "Traceback" in line or "Integrity" in line]
