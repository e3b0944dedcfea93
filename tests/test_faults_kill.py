"""kill -9 at random points of a cycle and of delivery: no alert lost, every copy the same
Message-ID.

A real `syncd run` (DEBUG log, SQLite store) reads a real Radicale calendar and sends to a
real aiosmtpd server. Each round adds one incomplete visit, then kills the daemon with
SIGKILL at one of three points, chosen by a seeded random generator:

- ``line``: on the k-th line the daemon logs (sync, evaluation, enqueue, claim, send...);
- ``before-ack``: in the middle of DATA, before the server has accepted the message (it is
  not delivered: the client never hears a 250 and the server never keeps it);
- ``after-ack``: once the server has kept the message but before the daemon hears the 250,
  the window where the store cannot know the message went.

A last daemon then runs until every visit's finding has arrived. The test fails if any
finding never arrives, or arrives under two Message-IDs. ``SYNCD_KILL_ROUNDS`` sets the
number of rounds (default 100); the figures are printed for the README.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller

from tests.harness import EventSpec
from tests.harness.caldav import CalDavHarness
from tests.servers import SharedServer
from tests.smtp_sink import Sink, free_port

LON = ZoneInfo("Europe/London")
ROUNDS = int(os.environ.get("SYNCD_KILL_ROUNDS", "100"))
pytestmark = pytest.mark.timeout(max(900, ROUNDS * 12))


def wait_for(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        threading.Event().wait(0.02)
    return cond()


class KillingSink:
    """An aiosmtpd handler that keeps what it accepts, and can SIGKILL the sender mid-DATA."""

    def __init__(self) -> None:
        self.kept: list[EmailMessage] = []
        self.victim: int | None = None
        self.mode: str | None = None  # "before-ack" | "after-ack" | None
        self.kills = 0
        self.arrived: list[float] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mode, victim = self.mode, self.victim
        if mode is not None and victim is not None:
            self.mode = None
            if mode == "after-ack":
                self._keep(envelope.content)  # the server has it: it counts as delivered
            os.kill(victim, signal.SIGKILL)
            self.kills += 1
            await asyncio.sleep(0)
            return "451 4.3.0 sender gone"  # nobody is listening any more
        self._keep(envelope.content)
        return "250 OK"

    def _keep(self, content: bytes) -> None:
        msg = message_from_bytes(content, policy=default_policy)
        assert isinstance(msg, EmailMessage)
        with self._lock:
            self.kept.append(msg)
            self.arrived.append(time.monotonic())

    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return list(self.kept)


class Daemon:
    """One `syncd run --log-level DEBUG`; can be killed on its k-th log line."""

    def __init__(self, config: Path, env: dict[str, str], kill_on_line: int | None = None):
        self.kill_on_line = kill_on_line
        self.killed_on_line = False
        self.lines = 0
        self.tail: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "syncd", "--log-level", "DEBUG", "run", "--config", str(config)],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines += 1
            self.tail = [*self.tail[-30:], line.rstrip("\n")]
            if self.kill_on_line is not None and self.lines == self.kill_on_line:
                self.proc.kill()
                self.killed_on_line = True

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(60)
        self._reader.join(60)


@pytest.fixture
def smtp() -> Iterator[tuple[KillingSink, int]]:
    sink = KillingSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield sink, controller.port
    finally:
        controller.stop()


def visit(n: int) -> EventSpec:
    day = (datetime.now(UTC) + timedelta(days=1)).astimezone(LON).date()
    start = datetime(day.year, day.month, day.day, 9, tzinfo=LON) + timedelta(minutes=5 * n)
    return EventSpec(
        uid=f"kill-{n:03d}",
        summary=f"HV round {n:03d}",
        start=start,
        end=start + timedelta(minutes=4),
        location="12 Acacia Avenue, Derby",  # no postcode: one finding per visit
        description="Contact: 07911 123456\nGoing straight home afterwards.",
    )


def findings_in(msg: EmailMessage) -> set[str]:
    text = Sink.text(msg)
    return {line.split("HV round ")[1][:3] for line in text.splitlines() if "HV round " in line}


def test_kill_9_at_random_points_loses_no_alert_and_resends_with_the_same_message_id(
    radicale_server: SharedServer,
    smtp: tuple[KillingSink, int],
    tmp_path: Path,
) -> None:
    sink, port = smtp
    h = CalDavHarness(radicale_server)
    cal = h.make_calendar("kill")
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    env["SYNCD_KILL_PW"] = h.password
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'database = "sqlite:///{tmp_path}/state.db"\npoll_interval = 10\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n'
        'sender = "syncd@council.example"\n'
        '[notify]\nmorning_report = "00:00:00"\nsettle_minutes = 0\n'
        f'[[sources]]\nname = "dav"\nkind = "caldav"\nurl = "{radicale_server.url}"\n'
        f'username = "{h.user}"\npassword = {{ env = "SYNCD_KILL_PW" }}\n'
        '[[teams]]\nname = "North"\nmonitors = ["duty@council.example"]\n'
        '[[teams.staff]]\nid = "s1"\nname = "Amira Khan"\n'
        f'calendar = {{ source = "dav", locator = "/{cal}" }}\n'
    )
    rng = random.Random(20261202)
    wanted: set[str] = set()
    added_at: dict[str, float] = {}
    points: dict[str, int] = defaultdict(int)

    def delivered() -> dict[str, set[str]]:
        ids: dict[str, set[str]] = defaultdict(set)
        for msg in sink.messages():
            if "morning report" in str(msg["Subject"]):
                continue
            for n in findings_in(msg):
                ids[n].add(str(msg["Message-ID"]))
        return ids

    # Calibration: one clean run, to learn how many lines a cycle with a send logs.
    h.put(cal, visit(0))
    wanted.add("000")
    added_at["000"] = time.monotonic()
    d = Daemon(config, env)
    try:
        assert wait_for(lambda: "000" in delivered() or d.proc.poll() is not None, 120)
        assert "000" in delivered(), "the clean run sent nothing:\n" + "\n".join(d.tail)
        assert wait_for(lambda: d.lines > 0, 10)
        lines_per_cycle = d.lines
    finally:
        d.stop()

    try:
        for n in range(1, ROUNDS + 1):
            h.put(cal, visit(n))
            key = f"{n:03d}"
            wanted.add(key)
            added_at[key] = time.monotonic()
            point = rng.choice(["line", "before-ack", "after-ack"])
            kill_on = rng.randint(1, lines_per_cycle) if point == "line" else None
            kills_before = sink.kills
            d = Daemon(config, env, kill_on_line=kill_on)
            if point != "line":
                sink.victim, sink.mode = d.proc.pid, point
            try:
                assert wait_for(lambda p=d.proc: p.poll() is not None, 120), (
                    f"round {n}: the daemon was never killed at {point}"
                )
            finally:
                sink.mode = sink.victim = None
                d.stop()
            if point == "line":
                points["line" if d.killed_on_line else "line (exited first)"] += 1
            else:
                assert sink.kills == kills_before + 1
                points[point] += 1

        # The last daemon runs until everything has arrived.
        d = Daemon(config, env)
        try:
            arrived = wait_for(lambda: wanted <= set(delivered()), 300)
        finally:
            d.stop()
    finally:
        h.close()

    got = delivered()
    lost = sorted(wanted - set(got))
    two_ids = {n: ids for n, ids in got.items() if len(ids) > 1}
    copies = defaultdict(int)
    for msg in sink.messages():
        for n in findings_in(msg):
            copies[n] += 1
    duplicates = sum(c - 1 for c in copies.values())
    first_seen = {}
    for msg, at in zip(sink.messages(), sink.arrived, strict=True):
        for n in findings_in(msg):
            first_seen.setdefault(n, at)
    longest = max(first_seen[n] - added_at[n] for n in first_seen)
    print(
        f"\nFIGURES kill -9: rounds={ROUNDS} kills={sum(points.values())} points={dict(points)} "
        f"alerts={len(wanted)} lost={len(lost)} duplicate_copies={duplicates} "
        f"copies_with_a_second_message_id={len(two_ids)} longest_delay={longest:.1f}s"
    )
    assert arrived and not lost, f"alerts lost: {lost}"
    assert not two_ids, f"a finding arrived under two Message-IDs: {two_ids}"
    assert sum(points.values()) == ROUNDS
