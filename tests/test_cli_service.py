"""`syncd once`, `syncd status` and the metrics file, as an admin runs them."""

from __future__ import annotations

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
        '[notify]\nmorning_report = "00:00:00"\n'
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
    assert status.returncode == 0, status.stderr
    lines = {line.split()[0]: line for line in status.stdout.splitlines()[1:] if line.strip()}
    assert "ok" in lines["s1002"] and "BLIND" in lines["s1009"]

    prom = (tmp_path / "metrics" / "syncd.prom").read_text()
    assert "syncd_calendars 2" in prom
    assert "syncd_calendars_blind 1" in prom
    assert "syncd_outbox_pending 0" in prom
    assert "# TYPE syncd_findings_open gauge" in prom
