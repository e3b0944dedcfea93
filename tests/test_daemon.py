"""The service process: sd_notify READY/WATCHDOG over a real socket, clean SIGTERM stop.

This is the one real-time smoke test: it starts `syncd run` and waits for systemd-style
notifications on a datagram socket, as systemd itself would.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.realtime
@pytest.mark.timeout(60)
def test_run_notifies_systemd_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    cal = tmp_path / "cal"
    cal.mkdir()
    (cal / "ben.ics").write_bytes((ROOT / "config" / "calendars" / "ben.ics").read_bytes())
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(
        f'database = "sqlite:///{tmp_path / "state.db"}"\n'
        "poll_interval = 10\n"
        '[[sources]]\nname = "files"\nkind = "ics"\n'
        '[[teams]]\nname = "North"\nmonitors = ["duty@council.example"]\n'
        f'[[teams.staff]]\nid = "s1"\nname = "Ben"\ncalendar = {{ source = "files", locator = "{cal}" }}\n'
    )
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(30)
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd", "run", "--config", str(cfg)],
        env={**os.environ, "NOTIFY_SOCKET": str(sock_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        received: list[str] = []
        while not any("READY=1" in m for m in received):
            received.append(sock.recv(4096).decode())
        while not any("WATCHDOG=1" in m for m in received):
            received.append(sock.recv(4096).decode())
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
        received.append(sock.recv(4096).decode())
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    assert proc.returncode == 0, err
    assert "STOPPING=1" in received[-1]
    assert "stopped" in err and "Traceback" not in err
    assert db_has_calendar(tmp_path / "state.db")


def db_has_calendar(path: Path) -> bool:
    import sqlite3

    with sqlite3.connect(path) as conn:
        return (
            conn.execute("SELECT count(*) FROM calendars WHERE last_ok_at IS NOT NULL").fetchone()[
                0
            ]
            == 1
        )


def test_a_cycle_that_crashes_does_not_end_the_service(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from syncd.app.daemon import Daemon
    from syncd.config import parse_config
    from syncd.store import open_store
    from syncd.track.engine import Engine

    cfg = parse_config({"database": f"sqlite:///{tmp_path / 's.db'}"})
    store = open_store(cfg.database)
    engine = Engine(cfg, store, None)
    clock_calls = iter(
        [datetime(2026, 12, 1, 9, tzinfo=UTC), None, datetime(2026, 12, 1, 9, 1, tzinfo=UTC)]
    )

    def clock() -> datetime:
        value = next(clock_calls)
        if value is None:
            raise OSError("disk full")  # stands in for any failure inside a cycle
        return value

    notes: list[str] = []
    daemon = Daemon(engine, interval=60, clock=clock, notify=notes.append)
    daemon.run_cycle()
    daemon.run_cycle()
    daemon.run_cycle()
    assert (daemon.cycles, daemon.failed_cycles) == (2, 1)
