"""The command line as users meet it: exit codes, one-line errors, never a traceback."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.app.cli import main

ROOT = Path(__file__).parent.parent
CALS = ROOT / "config" / "calendars"
WINDOW = ["--from", "2026-11-30", "--to", "2026-12-07"]


def syncd(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncd", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(r: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    for f in fragments:
        assert f in lines[0]


def test_check_clean_calendar_exits_0() -> None:
    r = syncd("check", CALS / "amira.ics", *WINDOW)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 visit(s) checked" in r.stdout


def test_check_json_lists_every_finding_with_offsets() -> None:
    r = syncd("check", "--json", CALS / "amira.ics", CALS / "ben.ics", *WINDOW)
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert out["visits"] == 5
    got = sorted((f["rule"], f["summary"], f["start"]) for f in out["findings"])
    assert got == [
        ("invalid-contact", "HV", "2026-12-03T14:00:00+00:00"),
        ("missing-postcode", "HV Smith", "2026-12-02T10:00:00+00:00"),
        ("missing-return", "HV Smith", "2026-12-02T10:00:00+00:00"),
        ("missing-times", "Home visit Jones family", "2026-12-02"),
        ("missing-who", "HV", "2026-12-03T14:00:00+00:00"),
    ]
    f = out["findings"][0]
    assert set(f) >= {"rule", "file", "uid", "summary", "start", "message"}
    assert f["file"].endswith("ben.ics")


def test_check_table_is_readable() -> None:
    r = syncd("check", CALS / "ben.ics", *WINDOW)
    assert r.returncode == 1
    assert r.stdout.splitlines()[0].startswith("WHEN")
    assert "missing-postcode" in r.stdout and "5 finding(s) in 3 visit(s)" in r.stdout


def test_check_summer_time_offsets() -> None:
    r = syncd("check", "--json", CALS / "ben.ics", "--from", "2026-06-01", "--to", "2026-06-08")
    starts = {f["start"] for f in json.loads(r.stdout)["findings"]}
    assert "2026-06-03T10:00:00+01:00" in starts  # Outlook's "GMT Standard Time" in BST


def test_missing_file_is_one_line_naming_it(tmp_path: Path) -> None:
    r = syncd("check", tmp_path / "nope.ics", *WINDOW)
    assert_one_line_error(r, "nope.ics")


def test_not_a_calendar_is_one_line_naming_it(tmp_path: Path) -> None:
    p = tmp_path / "photo.ics"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    assert_one_line_error(syncd("check", p, *WINDOW), "photo.ics")


def test_bad_usage_is_one_line() -> None:
    assert_one_line_error(
        syncd("check", CALS / "ben.ics", "--from", "tomorrow"), "--from", "tomorrow"
    )
    assert_one_line_error(syncd("frobnicate"), "frobnicate")


def test_check_with_bad_config_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("lookahead_days = 0\n")
    assert_one_line_error(
        syncd("check", "--config", cfg, CALS / "ben.ics"), "c.toml", "lookahead_days"
    )


def test_check_config_reports_each_secret_without_its_value(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[smtp]\nhost = "h"\nsender = "s@council.example"\nusername = "u"\n'
        'password = { env = "SYNCD_TEST_SMTP_PW" }\n'
    )
    ok = syncd("check-config", "--config", cfg, env={"SYNCD_TEST_SMTP_PW": "s3cret-value"})
    assert ok.returncode == 0, ok.stderr
    assert "ok: smtp.password (environment variable SYNCD_TEST_SMTP_PW)" in ok.stdout
    assert "s3cret" not in ok.stdout + ok.stderr
    env = {k: v for k, v in os.environ.items() if k != "SYNCD_TEST_SMTP_PW"}
    bad = subprocess.run(
        [sys.executable, "-m", "syncd", "check-config", "--config", str(cfg)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert (
        bad.returncode == 2 and "SYNCD_TEST_SMTP_PW" in bad.stderr and "Traceback" not in bad.stderr
    )


@pytest.fixture
def restore_logging() -> Iterator[None]:
    # main() points the root logger at the stderr of the moment, which capsys closes after the
    # test; later log calls (server threads) would then write to a closed file.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(
    "name",
    sorted(
        p.name
        for p in (ROOT / "tests" / "data" / "interop").rglob("*")
        if p.suffix in (".ics", ".txt") and p.name != "SOURCES.md"
    ),
)
def test_check_never_tracebacks_on_real_world_files(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = next((ROOT / "tests" / "data" / "interop").rglob(name))
    # In-process (the same main() the console script calls) to keep 36 files fast.
    code = main(["check", str(path), "--from", "2000-01-01", "--to", "2030-01-01"])
    err = capsys.readouterr().err
    assert code in (0, 1, 2)
    assert "Traceback" not in err and "internal error" not in err


def test_check_reads_a_bottomless_file_only_up_to_the_limit() -> None:
    r = syncd("check", "/dev/zero", *WINDOW)
    assert_one_line_error(r, "/dev/zero", "larger than")


def test_check_into_a_closed_pipe_exits_quietly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd", "check", CALS / "ben.ics", *WINDOW],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader (e.g. `| head`) has gone before anything is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "internal error" not in err and "Exception" not in err


def test_check_never_claims_completeness_for_a_file_it_could_not_read(tmp_path: Path) -> None:
    r = syncd("check", tmp_path / "nope.ics", CALS / "amira.ics", *WINDOW)
    assert r.returncode == 2
    assert "nope.ics" in r.stderr
    assert "1 file(s) could not be read" in r.stdout
    assert "in the file(s) read" in r.stdout
    only_missing = syncd("check", tmp_path / "nope.ics", *WINDOW)
    assert "every entry has the required details" not in only_missing.stdout
    assert "could not be read" in only_missing.stdout


def _smtp_config(tmp_path: Path, password: str) -> Path:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'database = "sqlite:///{tmp_path / "s.db"}"\n'
        '[smtp]\nhost = "127.0.0.1"\nport = 9\nsender = "s@council.example"\nusername = "u"\n'
        f"password = {password}\n"
    )
    return cfg


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"", "is empty"), (b"\n", "is empty"), (b"pa\xffss\xfe", "not UTF-8")],
)
def test_check_config_refuses_empty_and_non_utf8_secrets(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    secret = tmp_path / "pw"
    secret.write_bytes(content)
    r = syncd("check-config", "--config", _smtp_config(tmp_path, f'{{ file = "{secret}" }}'))
    assert r.returncode == 2
    assert "smtp.password" in r.stderr and expected in r.stderr
    assert "Traceback" not in r.stderr and "\\xff" not in r.stderr and "xff" not in r.stderr


@pytest.mark.parametrize(
    ("url", "expected"),
    [("nonsense", "not a usable database URL"), ("nosuchdb://x/y", "not a usable database URL")],
)
def test_check_config_refuses_a_bad_database_url(tmp_path: Path, url: str, expected: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'database = "{url}"\n')
    r = syncd("check-config", "--config", cfg)
    assert r.returncode == 2
    assert "database" in r.stderr and expected in r.stderr


def test_once_with_a_missing_smtp_secret_stops_at_start_naming_the_key(tmp_path: Path) -> None:
    cfg = _smtp_config(tmp_path, '{ env = "SYNCD_TEST_NO_SUCH_SECRET" }')
    r = syncd("once", "--config", cfg)
    assert_one_line_error(r, "smtp.password", "SYNCD_TEST_NO_SUCH_SECRET")


def test_check_config_names_an_unwritable_metrics_folder(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'metrics_file = "{tmp_path / "no" / "such" / "syncd.prom"}"\n')
    r = syncd("check-config", "--config", cfg)
    assert r.returncode == 2
    assert "metrics_file" in r.stderr and str(tmp_path / "no" / "such") in r.stderr
