"""Under systemd, stderr is a journal stream: lines carry sd-daemon priority prefixes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_journal_stream_gets_priority_prefixes(tmp_path: Path) -> None:
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(
        f'database = "sqlite:///{tmp_path / "state.db"}"\n'
        '[[sources]]\nname = "files"\nkind = "ics"\n'
        '[[teams]]\nname = "North"\nmonitors = ["duty@council.example"]\n'
        f'[[teams.staff]]\nid = "s1"\nname = "A"\ncalendar = {{ source = "files", locator = "{tmp_path / "none.ics"}" }}\n'
    )
    err_path = tmp_path / "stderr"
    with err_path.open("wb") as err:
        st = os.fstat(err.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        subprocess.run(
            [sys.executable, "-m", "syncd", "once", "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
            timeout=120,
        )
    lines = [line for line in err_path.read_text().splitlines() if line]
    assert lines, "nothing logged"
    assert all(line[:3] in ("<2>", "<3>", "<4>", "<6>", "<7>") for line in lines), lines
    assert any(line.startswith("<4>syncd.track.sync: calendar s1 unreadable") for line in lines)
    assert any(line.startswith("<3>") and "no [smtp]" in line for line in lines)


def test_a_missing_config_is_one_plain_line(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "syncd", "once", "--config", str(tmp_path / "absent.toml")],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"},
    )
    assert r.returncode == 2
    assert r.stderr.startswith("syncd: error: ") and "absent.toml" in r.stderr
