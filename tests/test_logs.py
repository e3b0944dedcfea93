"""Under systemd, stderr is a journal stream: lines carry sd-daemon priority prefixes. And
no library logs a server's reply (personal data) at INFO or above."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from syncd.app.logs import setup
from syncd.domain.model import Window
from syncd.errors import SourceError
from syncd.sources.caldav import CalDavOptions, CalDavSource


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


# --- library loggers: a malformed server reply must not reach the log ---------------------

PERSONAL = ("Amira Khan", "07911 123456", "12 Acacia Avenue")
BROKEN = (
    b'<?xml version="1.0"?><d:multistatus xmlns:d="DAV:"><d:response>'
    b"<d:href>/cal/v1.ics</d:href><d:propstat><d:prop><d:getetag>x</d:getetag>"
    b"SUMMARY:HV Amira Khan, 12 Acacia Avenue, tel 07911 123456<d:response>"
)


class _BrokenDav(BaseHTTPRequestHandler):
    """Answers every WebDAV request with a 207 whose XML breaks off half way."""

    seen: ClassVar[list[str]] = []

    def _broken(self) -> None:
        self.seen.append(self.command)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(207)
        self.send_header("Content-Type", 'text/xml; charset="utf-8"')
        self.send_header("Content-Length", str(len(BROKEN)))
        self.end_headers()
        self.wfile.write(BROKEN)

    do_PROPFIND = do_REPORT = do_GET = do_OPTIONS = _broken

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def broken_dav() -> Iterator[str]:
    _BrokenDav.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BrokenDav)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_caldav_logs_a_malformed_body_at_info_through_the_root_logger(
    broken_dav: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The hazard is real: without syncd's setup, the body reaches INFO."""
    caplog.set_level(logging.INFO)
    source = CalDavSource("dav", CalDavOptions(url=broken_dav), lambda _f: "")
    with pytest.raises(SourceError) as info:
        start = datetime(2026, 12, 1, tzinfo=UTC)
        source.sync("cal/", None, {}, Window(start, start + timedelta(days=7)))
    source.close()
    assert "Amira Khan" not in str(info.value)
    leaked = [r for r in caplog.records if r.levelno >= logging.INFO and "Amira" in r.getMessage()]
    assert leaked and leaked[0].name == "root"


def test_a_malformed_server_reply_leaves_no_personal_data_in_the_log(
    broken_dav: str, tmp_path: Path
) -> None:
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(
        f'database = "sqlite:///{tmp_path / "state.db"}"\n'
        f'[[sources]]\nname = "dav"\nkind = "caldav"\nurl = "{broken_dav}"\n'
        '[[teams]]\nname = "North"\nmonitors = ["duty@council.example"]\n'
        '[[teams.staff]]\nid = "s1"\nname = "A"\n'
        'calendar = { source = "dav", locator = "cal/" }\n'
    )
    r = subprocess.run(
        [sys.executable, "-m", "syncd", "once", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"},
    )
    assert "REPORT" in _BrokenDav.seen or "PROPFIND" in _BrokenDav.seen
    assert "calendar s1 unreadable" in r.stderr, r.stderr
    for personal in PERSONAL:
        assert personal not in r.stderr and personal not in r.stdout, personal


def test_library_records_pass_at_warning_without_their_traceback() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup("DEBUG", stream=stream)
        try:
            raise ValueError("Visiting Amira Khan")
        except ValueError:
            logging.getLogger("caldav").error("multiget failed", exc_info=True)
            logging.error("root logger error", exc_info=True)
        try:
            raise KeyError("s1")
        except KeyError:
            logging.getLogger("syncd.test").debug("ours at debug", exc_info=True)
        logging.info("body: Amira Khan")  # caldav's call, verbatim in spirit
        logging.getLogger("httpx").info("GET /users/amira.khan@council.example/")
        logging.getLogger("exchangelib").error("<m:Mailbox>amira.khan@council.example")
        logging.getLogger("somelib").info("uncapped library at INFO")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    text = stream.getvalue()
    assert "multiget failed (ValueError)" in text and "root logger error (ValueError)" in text
    assert "ours at debug" in text and "Traceback" in text  # syncd's own DEBUG keeps its trace
    assert text.count("Traceback") == 1
    assert "uncapped library" not in text
    assert "amira" not in text.lower()
