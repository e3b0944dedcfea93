"""The webhook under attack, on real uvicorn and real loopback sockets: half-open connections,
slow loris, a huge chunked body, deeply nested JSON and floods of bad requests. None of them
may starve the sync loop of file descriptors, reach the app unbounded, or flood the log.

Limits are lowered (a few connections, a 1-2 s request deadline) so the tests are quick; the
waits are on conditions (a socket closing, a counter), with generous timeouts."""

from __future__ import annotations

import json
import logging
import os
import queue
import resource
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from syncd.config import build_notifier, parse_config
from syncd.store import open_store
from syncd.track.engine import Engine
from syncd.web.guard import Limits, too_deep
from syncd.web.webhook import WebServer, Work, WorkQueue, create_app
from tests.harness.ical_build import spec_to_ical
from tests.smtp_sink import smtp_sink
from tests.test_engine import T0, visit

STATE = "hardening-client-state"
PATH = "/graph/notifications"
GOOD = json.dumps(
    {"value": [{"subscriptionId": "sub-1", "clientState": STATE, "changeType": "updated"}]}
).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        threading.Event().wait(0.02)
    return cond()


class Clock:
    """The rate limit's time, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class Endpoint:
    def __init__(self, limits: Limits) -> None:
        self.work: WorkQueue = queue.SimpleQueue()
        self.clock = Clock()
        self.port = free_port()
        app = create_app(
            client_state=STATE, directory=lambda: {"sub-1": "s1"}, work=self.work, limits=limits
        )
        self.web = WebServer(app, "127.0.0.1", self.port, clock=self.clock, limits=limits)
        assert self.web.start()
        self.url = f"http://127.0.0.1:{self.port}{PATH}"

    def post(self, body: bytes) -> int:
        return httpx.post(self.url, content=body, timeout=30).status_code


@pytest.fixture
def endpoint(request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    limits = getattr(request, "param", Limits(max_connections=8, request_timeout=2.0, backlog=16))
    ep = Endpoint(limits)
    yield ep
    ep.web.stop()


def lines(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    """The records saying ``text``; a summary line counts only when ``text`` is "suppressed"."""
    return [
        r
        for r in caplog.records
        if text in r.getMessage()
        and (text == "suppressed" or not r.getMessage().startswith("suppressed"))
    ]


# --- half-open connections do not take the daemon's descriptors ---------------------------

ATTACKER = r"""
import select, socket, sys
n, port = int(sys.argv[1]), int(sys.argv[2])
sys.stdin.readline()
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        s.sendall(b"POST /graph/notifications HTTP/1.1\r\nHost: x\r\n")  # never finished
    except OSError:
        pass
    socks.append(s)
print("open", flush=True)
closed = set()
while len(closed) < n:
    ready, _, _ = select.select([s for s in socks if s not in closed], [], [], 60)
    if not ready:
        break
    for s in ready:
        try:
            if s.recv(4096) == b"":
                closed.add(s)
        except OSError:
            closed.add(s)
print("closed", len(closed), flush=True)
sys.stdin.readline()
"""


class Feed(ThreadingHTTPServer):
    """A calendar feed over HTTP: the sync loop needs a socket of its own to read it."""

    daemon_threads = True

    def __init__(self, body: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/calendar")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}).start()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_half_open_connections_are_capped_cut_and_the_sync_loop_keeps_its_sockets(
    endpoint: Endpoint, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    attackers = 150
    spec = visit("a1", "HV Patel family", 1, 10, location="12 Acacia Avenue, Derby")
    feed = Feed(spec_to_ical(spec).encode())
    attacker = subprocess.Popen(
        [sys.executable, "-c", ATTACKER, str(attackers), str(endpoint.port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with smtp_sink() as sink:
        cfg = parse_config(
            {
                "database": f"sqlite:///{tmp_path / 'state.db'}",
                "smtp": {
                    "host": "127.0.0.1",
                    "port": sink.port,
                    "security": "none",
                    "sender": "syncd@council.example",
                },
                "notify": {"settle_minutes": 0, "morning_report": None},
                "sources": [{"name": "feed", "kind": "ics"}],
                "teams": [
                    {
                        "name": "North",
                        "monitors": ["duty@council.example"],
                        "staff": [
                            {
                                "id": "s1",
                                "name": "Amira Khan",
                                "calendar": {
                                    "source": "feed",
                                    "locator": f"http://127.0.0.1:{feed.server_address[1]}/a.ics",
                                },
                            }
                        ],
                    }
                ],
            }
        )
        engine = Engine(cfg, open_store(cfg.database), build_notifier(cfg))
        try:
            # As under systemd's default of 1,024, scaled down: far fewer descriptors than
            # the attacker opens connections. The attacker process keeps its own limit.
            assert endpoint.web.active_limits.descriptors() == 57
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_fds() + 80, hard))
            assert attacker.stdin is not None and attacker.stdout is not None
            attacker.stdin.write("go\n")
            attacker.stdin.flush()
            assert attacker.stdout.readline().strip() == "open"
            assert endpoint.web.open_connections() <= 8

            # The sync loop, meanwhile: reads the feed, writes the store, sends the digest.
            report = engine.cycle(T0 + timedelta(minutes=1))
            assert report.failed == 0 and report.sent == 1
            assert len(sink.take()) == 1

            # Every half-open connection is cut: at once over the cap, at the deadline within.
            assert attacker.stdout.readline().split() == ["closed", str(attackers)]
            assert wait_for(lambda: endpoint.web.open_connections() == 0)
            # A real notification gets through.
            assert endpoint.post(GOOD) == 202
            assert endpoint.work.get(timeout=10) == Work(sync=frozenset({"s1"}))
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            engine.close()
            attacker.kill()
            attacker.wait(30)
            feed.shutdown()
            feed.server_close()
    endpoint.web.stop()  # flushes the summary lines
    cut = [r for r in caplog.records if r.getMessage().startswith("webhook: closed")]
    assert 1 <= len(cut) <= 10, len(cut)  # five of each kind a minute, not one per connection
    summaries = lines(caplog, "suppressed")
    assert summaries and sum(int(r.getMessage().split()[1]) for r in summaries) >= attackers - 20
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def recv_closed(sock: socket.socket, timeout: float = 30.0) -> bytes:
    """What the server sends until it closes the connection."""
    sock.settimeout(timeout)
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /graph/notifications HTTP/1.1\r\nHost: x\r\nContent-",  # headers dripping
        b"POST /graph/notifications HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{",  # body
        b"",  # connected, silent
    ],
)
def test_a_slow_client_is_cut_at_the_request_deadline(
    endpoint: Endpoint, request_bytes: bytes
) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", endpoint.port)) as sock:
        sock.sendall(request_bytes)
        assert recv_closed(sock) == b""  # closed without an answer (the deadline is 2 s)
    assert 1.0 <= time.monotonic() - started <= 30
    assert wait_for(lambda: endpoint.web.open_connections() == 0)
    assert endpoint.post(GOOD) == 202


# --- the body is capped as it streams -------------------------------------------------------


def test_a_huge_chunked_body_is_refused_once_past_the_cap_not_buffered(
    endpoint: Endpoint,
) -> None:
    chunk = b"x" * 65536
    frame = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", endpoint.port)) as sock:
        sock.sendall(
            b"POST /graph/notifications HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        try:
            while sent < 300 << 20 and not answer:
                sock.sendall(frame)
                sent += len(chunk)
                if select.select([sock], [], [], 0)[0]:
                    answer = sock.recv(65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer += recv_closed(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
    # The cap is 1 MiB; loopback's socket buffers hold a few MiB more in flight. Buffered
    # whole, all 300 MiB would have gone through before the answer.
    assert sent < 32 << 20, sent
    assert endpoint.work.empty()
    assert endpoint.post(GOOD) == 202


# --- deep JSON ------------------------------------------------------------------------------


def test_deeply_nested_json_is_a_400_without_a_traceback(
    endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for body in (b"[" * 100_000, b'{"value": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"):
        assert endpoint.post(body) == 400
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert len(lines(caplog, "nested too deep")) == 2
    assert endpoint.post(GOOD) == 202


def test_depth_check_skips_strings_and_escapes() -> None:
    assert not too_deep(GOOD, 4)
    assert too_deep(b"[[[[[]]]]]", 4) and not too_deep(b"[[[[]]]]", 4)
    assert not too_deep(b'["[[[[[[", "{{{{{{{"]', 2)
    assert not too_deep(b'["\\"[[[[[[[\\\\", 1]', 2)  # escaped quote, then an escaped backslash
    assert too_deep(b'["\\\\"' + b"[" * 5 + b"]", 4)  # the string ended: these brackets count


# --- logs are rate-limited by the injected clock ----------------------------------------------


def test_a_flood_of_bad_requests_logs_five_lines_a_minute_and_a_summary(
    endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with httpx.Client(timeout=30) as client:
        for _ in range(200):
            assert client.post(endpoint.url, content=b"not json").status_code == 400
        assert len(lines(caplog, "rejected a change notification")) == 5
        assert not lines(caplog, "suppressed")

        endpoint.clock.now += timedelta(seconds=61)  # the minute is over
        assert client.post(endpoint.url, content=b"{}").status_code == 400
    (summary,) = lines(caplog, "suppressed")
    assert summary.getMessage().startswith("suppressed 195 similar message(s) in 60s")
    assert summary.levelno == logging.WARNING
    assert len(lines(caplog, "rejected a change notification")) == 6

    # uvicorn's own line for a request it cannot parse is capped the same way.
    for _ in range(50):
        with socket.create_connection(("127.0.0.1", endpoint.port)) as sock:
            sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            assert recv_closed(sock).startswith(b"HTTP/1.1 400")
    assert len(lines(caplog, "Invalid HTTP request received.")) == 5
    endpoint.web.stop()
    assert any("suppressed 45 similar" in r.getMessage() for r in caplog.records)
