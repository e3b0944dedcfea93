"""`syncd once`, `syncd status` and the metrics file, as an admin runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.smtp_sink import Sink, smtp_sink

ROOT = Path(__file__).parent.parent


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncd", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


def write_config(tmp_path: Path, sink: Sink, locator: Path) -> Path:
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(
        f'database = "sqlite:///{tmp_path / "state.db"}"\n'
        f'metrics_file = "{tmp_path / "metrics" / "syncd.prom"}"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {sink.port}\nsecurity = "none"\nsender = "syncd@council.example"\n'
        '[notify]\nmorning_report = "00:00:00"\nsettle_minutes = 0\n'
        '[[sources]]\nname = "files"\nkind = "ics"\n'
        '[[teams]]\nname = "North"\nmonitors = ["duty@council.example"]\n'
        f'[[teams.staff]]\nid = "s1002"\nname = "Ben Taylor"\ncalendar = {{ source = "files", locator = "{locator}" }}\n'
        f'[[teams.staff]]\nid = "s1009"\nname = "Nobody Yet"\ncalendar = {{ source = "files", locator = "{tmp_path / "missing.ics"}" }}\n'
    )
    return cfg


def test_once_then_status_and_metrics(tmp_path: Path) -> None:
    with smtp_sink() as sink:
        cfg = write_config(tmp_path, sink, ROOT / "config" / "calendars" / "ben.ics")
        r = run("once", "--config", cfg)
        # A calendar that cannot be read makes `once` exit non-zero: a blind spot is an error.
        assert r.returncode == 1, r.stderr
        assert "2 calendars, 1 unreadable" in r.stdout
        assert "Traceback" not in r.stderr
        subjects = sorted(m["Subject"] for m in sink.take())
        assert any("not being tracked" in s for s in subjects)
        # No names, addresses or numbers from the entries in the log.
        for secret in ("Ben Taylor", "Station Road", "07400", "Smith"):
            assert secret not in r.stderr

    status = run("status", "--config", cfg)
    # One blind calendar: status must not exit 0 (tools and admins read 0 as "all is well").
    assert status.returncode == 1, status.stderr
    lines = {line.split()[0]: line for line in status.stdout.splitlines()[1:] if line.strip()}
    assert "ok" in lines["s1002"] and "BLIND" in lines["s1009"]
    assert "1 calendar(s) blind or never read" in status.stdout

    # --config before the command, and --json for tools.
    as_json = run("--config", cfg, "status", "--json")
    assert as_json.returncode == 1, as_json.stderr
    states = {c["calendar"]: c for c in json.loads(as_json.stdout)["calendars"]}
    assert states["s1002"]["state"] == "ok" and states["s1009"]["state"] == "BLIND"
    assert states["s1009"]["failures"] >= 1

    found = run("findings", "--config", cfg, "--team", "North", "--json")
    assert found.returncode == 1, found.stderr
    rules = sorted(f["rule"] for f in json.loads(found.stdout)["findings"])
    assert rules and all(f.startswith(("missing-", "invalid-")) for f in rules)
    assert run("findings", "--config", cfg, "--team", "South").returncode == 2

    prom = (tmp_path / "metrics" / "syncd.prom").read_text()
    assert "syncd_calendars 2" in prom
    assert "syncd_calendars_blind 1" in prom
    assert "syncd_outbox_pending 0" in prom
    assert "# TYPE syncd_findings_open gauge" in prom


def test_a_second_sender_on_one_sqlite_store_is_refused(tmp_path: Path) -> None:
    from syncd.app.lock import StoreLock

    with smtp_sink() as sink:
        cfg = write_config(tmp_path, sink, ROOT / "config" / "calendars" / "ben.ics")
        with StoreLock(tmp_path / "state.db"):  # as a running `syncd run` holds it
            r = run("once", "--config", cfg)
            assert r.returncode == 2, r.stdout + r.stderr
            assert "another syncd is already running" in r.stderr
            assert "Traceback" not in r.stderr
            assert sink.take() == []
        # Released (as when that daemon stops or is killed): the next one runs.
        assert run("once", "--config", cfg).returncode == 1
