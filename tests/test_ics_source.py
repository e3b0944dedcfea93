"""IcsSource against real files and a real local HTTP(S) server (http.server on 127.0.0.1:0)."""

from __future__ import annotations

import base64
import hashlib
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import trustme

from syncd.errors import AuthError, SourceError
from syncd.parse.ical import parse_ical
from syncd.secrets import SecretRef
from syncd.sources import load
from syncd.sources.base import Window
from syncd.sources.ics import IcsOptions, IcsSource

UTC = ZoneInfo("UTC")
WINDOW = Window(datetime(2025, 10, 1, tzinfo=UTC), datetime(2025, 11, 1, tzinfo=UTC))


def ics(uid: str, summary: str = "Home visit") -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTART:20251014T090000Z\r\nDTEND:20251014T100000Z\r\n"
        f"SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


def source(**opts: object) -> IcsSource:
    return IcsSource("ics-test", IcsOptions(**opts), lambda _f: "s3cret")  # type: ignore[arg-type]


# --- files and folders --------------------------------------------------------------------------


def test_registered_as_kind_ics() -> None:
    assert load("ics") is IcsSource


def test_single_file_etag_is_content_hash_and_unchanged_means_empty_delta(tmp_path: Path) -> None:
    f = tmp_path / "cal.ics"
    f.write_bytes(ics("a"))
    src = source()
    cs = src.sync(str(f), None, {}, WINDOW)
    (item,) = cs.upserts
    assert cs.full and item.href == str(f) and item.kind == "ical"
    assert item.etag == hashlib.sha256(ics("a")).hexdigest()
    assert parse_ical(item.data, window=WINDOW, tz=UTC).occurrences[0].uid == "a"
    again = src.sync(str(f), cs.state, {item.href: item.etag}, WINDOW)
    assert again.upserts == [] and again.deletes == [] and not again.full
    f.write_bytes(ics("a", "Changed"))
    changed = src.sync(str(f), cs.state, {item.href: item.etag}, WINDOW)
    assert [i.etag for i in changed.upserts] == [hashlib.sha256(ics("a", "Changed")).hexdigest()]


def test_folder_lists_ics_files_and_reports_deletes(tmp_path: Path) -> None:
    for uid in ("a", "b", "c"):
        (tmp_path / f"{uid}.ics").write_bytes(ics(uid))
    (tmp_path / "notes.txt").write_text("not a calendar")
    (tmp_path / "UPPER.ICS").write_bytes(ics("d"))
    src = source()
    cs = src.sync(str(tmp_path), None, {}, WINDOW)
    known = {i.href: i.etag for i in cs.upserts}
    assert sorted(Path(h).name for h in known) == ["UPPER.ICS", "a.ics", "b.ics", "c.ics"]
    (tmp_path / "b.ics").unlink()
    (tmp_path / "e.ics").write_bytes(ics("e"))
    cs2 = src.sync(str(tmp_path), cs.state, known, WINDOW)
    assert cs2.full
    assert cs2.deletes == [str(tmp_path / "b.ics")]
    assert [Path(i.href).name for i in cs2.upserts] == ["e.ics"]


def test_empty_folder_deletes_everything_known(tmp_path: Path) -> None:
    cs = source().sync(str(tmp_path), None, {str(tmp_path / "x.ics"): "e"}, WINDOW)
    assert cs.full and cs.upserts == [] and cs.deletes == [str(tmp_path / "x.ics")]


def test_missing_file_is_a_permanent_error_without_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "jane.smith.ics"
    with pytest.raises(SourceError) as info:
        source().sync(str(missing), None, {}, WINDOW)
    assert info.value.permanent and not isinstance(info.value, AuthError)
    assert "jane" not in str(info.value)


def test_old_outlook_cp1252_file_is_decoded(tmp_path: Path) -> None:
    f = tmp_path / "old.ics"
    f.write_bytes(ics("a", "Visite café").decode().encode("cp1252"))
    (item,) = source().sync(str(f), None, {}, WINDOW).upserts
    assert "Visite café" in item.data


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "big.ics"
    f.write_bytes(ics("a") + b" " * 5000)
    with pytest.raises(SourceError, match="larger than") as info:
        source(max_bytes=1000).sync(str(f), None, {}, WINDOW)
    assert info.value.permanent


# --- HTTP ---------------------------------------------------------------------------------------


@dataclass
class Feed:
    body: bytes
    etag: str | None = None
    last_modified: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


class Server:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.feeds: dict[str, Feed] = {}
        self.seen: list[dict[str, str]] = []
        self.password: str | None = None
        self.hold = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                outer.seen.append({k.lower(): v for k, v in self.headers.items()})
                if self.path == "/slow":
                    outer.hold.wait(10)  # released by the test; the client times out first
                    return
                if outer.password is not None:
                    want = "Basic " + base64.b64encode(f"u:{outer.password}".encode()).decode()
                    if self.headers.get("Authorization") != want:
                        self.send_response(401)
                        self.send_header("WWW-Authenticate", 'Basic realm="cal"')
                        self.end_headers()
                        return
                feed = outer.feeds.get(self.path)
                if feed is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                if feed.status != 200:
                    self.send_response(feed.status)
                    for k, v in feed.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    return
                inm = self.headers.get("If-None-Match")
                ims = self.headers.get("If-Modified-Since")
                if (feed.etag and inm == feed.etag) or (
                    feed.last_modified and ims == feed.last_modified
                ):
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/calendar; charset=utf-8")
                if feed.etag:
                    self.send_header("ETag", feed.etag)
                if feed.last_modified:
                    self.send_header("Last-Modified", feed.last_modified)
                self.send_header("Content-Length", str(len(feed.body)))
                self.end_headers()
                self.wfile.write(feed.body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.stop()


def test_etag_conditional_get_costs_one_request_and_304(server: Server) -> None:
    server.feeds["/cal.ics"] = Feed(ics("a"), etag='"v1"')
    url = server.url + "/cal.ics"
    src = source()
    cs = src.sync(url, None, {}, WINDOW)
    (item,) = cs.upserts
    assert item.href == url and item.etag == 'etag:"v1"' and cs.requests == 1
    again = src.sync(url, cs.state, {url: item.etag}, WINDOW)
    assert server.seen[-1]["if-none-match"] == '"v1"'
    assert again.upserts == [] and again.deletes == [] and again.requests == 1
    server.feeds["/cal.ics"] = Feed(ics("a", "Moved"), etag='"v2"')
    changed = src.sync(url, cs.state, {url: item.etag}, WINDOW)
    assert [i.etag for i in changed.upserts] == ['etag:"v2"']
    assert "Moved" in changed.upserts[0].data
    src.close()


def test_last_modified_conditional_get(server: Server) -> None:
    lm = "Tue, 14 Oct 2025 09:00:00 GMT"
    server.feeds["/c.ics"] = Feed(ics("a"), last_modified=lm)
    url = server.url + "/c.ics"
    src = source()
    (item,) = src.sync(url, None, {}, WINDOW).upserts
    assert item.etag == f"lm:{lm}"
    assert src.sync(url, "ics", {url: item.etag}, WINDOW).upserts == []
    assert server.seen[-1]["if-modified-since"] == lm


def test_no_validators_falls_back_to_content_hash(server: Server) -> None:
    server.feeds["/c.ics"] = Feed(ics("a"))
    url = server.url + "/c.ics"
    src = source()
    (item,) = src.sync(url, None, {}, WINDOW).upserts
    assert item.etag == "sha256:" + hashlib.sha256(ics("a")).hexdigest()
    assert src.sync(url, "ics", {url: item.etag}, WINDOW).upserts == []
    assert "if-none-match" not in server.seen[-1]


def test_basic_auth_and_auth_errors(server: Server) -> None:
    server.password = "s3cret"
    server.feeds["/c.ics"] = Feed(ics("a"))
    url = server.url + "/c.ics"
    ok = source(username="u", password=SecretRef(env="X"))
    assert len(ok.sync(url, None, {}, WINDOW).upserts) == 1
    server.password = "rotated"
    with pytest.raises(AuthError) as info:
        ok.sync(url, None, {}, WINDOW)
    assert info.value.permanent
    server.password = None
    server.feeds["/c.ics"] = Feed(b"", status=403)
    with pytest.raises(AuthError):
        source().sync(url, None, {}, WINDOW)


@pytest.mark.parametrize(
    ("status", "permanent", "retry_after"),
    [
        (404, True, None),
        (410, True, None),
        (500, False, None),
        (503, False, 120.0),
        (429, False, 5.0),
    ],
)
def test_http_errors(
    server: Server, status: int, permanent: bool, retry_after: float | None
) -> None:
    headers = {"Retry-After": str(int(retry_after))} if retry_after else {}
    server.feeds["/c.ics"] = Feed(b"", status=status, headers=headers)
    with pytest.raises(SourceError) as info:
        source().sync(server.url + "/c.ics", None, {}, WINDOW)
    assert not isinstance(info.value, AuthError)
    assert info.value.permanent is permanent
    assert info.value.retry_after == retry_after


def test_timeout_is_transient(server: Server) -> None:
    with pytest.raises(SourceError, match="timed out") as info:
        source(timeout=0.2).sync(server.url + "/slow", None, {}, WINDOW)
    assert not info.value.permanent


def test_connection_refused_is_transient() -> None:
    with pytest.raises(SourceError) as info:
        source(timeout=2).sync("http://127.0.0.1:9/c.ics", None, {}, WINDOW)
    assert not info.value.permanent


def test_oversized_response_is_refused(server: Server) -> None:
    server.feeds["/c.ics"] = Feed(ics("a") + b" " * 50_000)
    with pytest.raises(SourceError, match="more than") as info:
        source(max_bytes=10_000).sync(server.url + "/c.ics", None, {}, WINDOW)
    assert info.value.permanent


def test_https_with_ca_file_and_not_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    srv = Server(tls=ctx)
    try:
        srv.feeds["/c.ics"] = Feed(ics("a"))
        url = srv.url + "/c.ics"
        assert len(source(ca_file=ca_file).sync(url, None, {}, WINDOW).upserts) == 1
        webcal = "webcal" + url[len("https") :]
        assert len(source(ca_file=ca_file).sync(webcal, None, {}, WINDOW).upserts) == 1
        # The process environment must not widen trust (trust_env=False).
        for var in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            monkeypatch.setenv(var, str(ca_file))
        with pytest.raises(SourceError) as info:
            source().sync(url, None, {}, WINDOW)
        assert info.value.permanent  # a certificate problem needs a human
    finally:
        srv.stop()
