"""CalDavSource against real Radicale and Xandikos, plus tiny local servers for failures."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest
import trustme
from caldav.davclient import DAVClient

from syncd.errors import AuthError, SourceError
from syncd.secrets import SecretRef
from syncd.sources.base import ChangeSet, Window
from syncd.sources.caldav import CalDavOptions, CalDavSource
from tests.harness import EventSpec
from tests.harness.caldav import CalDavHarness, expected_href
from tests.servers import SharedServer

LONDON = ZoneInfo("Europe/London")
WINDOW = Window(datetime(2025, 3, 10, tzinfo=LONDON), datetime(2025, 4, 7, tzinfo=LONDON))
T0 = datetime(2025, 3, 11, 10, tzinfo=LONDON)


def spec(uid: str, summary: str = "HV Smith", hours: int = 0) -> EventSpec:
    start = T0 + timedelta(hours=hours)
    return EventSpec(uid=uid, summary=summary, start=start, end=start + timedelta(hours=1))


@pytest.fixture(params=["radicale_server", "xandikos_server"])
def h(request: pytest.FixtureRequest) -> Iterator[CalDavHarness]:
    harness = CalDavHarness(request.getfixturevalue(request.param))
    yield harness
    harness.close()


@pytest.fixture
def radicale(radicale_server: SharedServer) -> Iterator[CalDavHarness]:
    harness = CalDavHarness(radicale_server)
    yield harness
    harness.close()


def sync(
    src: CalDavSource, loc: str, state: str | None = None, known: dict[str, str] | None = None
) -> ChangeSet:
    return src.sync(loc, state, known or {}, WINDOW)


def known_of(cs: ChangeSet) -> dict[str, str]:
    return {i.href: i.etag for i in cs.upserts}


def options(url: str, **kw: Any) -> CalDavOptions:
    return CalDavOptions(url=url, **kw)


# --- request economy ---------------------------------------------------------------------------


def test_request_counts_first_nochange_and_one_change(h: CalDavHarness) -> None:
    loc = h.make_calendar("jsmith")
    for i in range(20):
        h.put(loc, spec(f"v{i}", hours=i % 8))
    src = h.source()
    first = sync(src, loc)
    # One sync-collection REPORT plus ONE calendar-multiget for all 20, not 20 GETs.
    assert first.requests == 2 and len(first.upserts) == 20 and first.full
    assert {i.href for i in first.upserts} == {expected_href(loc, f"v{i}") for i in range(20)}
    known = known_of(first)

    idle = sync(src, loc, first.state, known)
    assert idle.requests == 1 and idle.upserts == [] and idle.deletes == [] and not idle.full

    h.put(loc, spec("v3", summary="HV Smith (moved)", hours=5))
    changed = sync(src, loc, idle.state, known)
    assert changed.requests == 2
    assert [i.href for i in changed.upserts] == [expected_href(loc, "v3")]
    assert changed.upserts[0].etag != known[expected_href(loc, "v3")]
    assert "HV Smith (moved)" in changed.upserts[0].data


def test_foreign_or_garbage_state_means_a_full_sync(h: CalDavHarness) -> None:
    loc = h.make_calendar("jsmith")
    h.put(loc, spec("a"))
    src = h.source()
    known = {expected_href(loc, "gone"): '"old"'}
    for state in ("not json", json.dumps([1, 2]), json.dumps({"token": ""})):
        cs = sync(src, loc, state, known)
        assert cs.full and [i.href for i in cs.upserts] == [expected_href(loc, "a")]
        assert cs.deletes == [expected_href(loc, "gone")]


def test_unknown_sync_token_is_refused_and_we_resync(h: CalDavHarness) -> None:
    # Radicale answers 403 DAV:valid-sync-token, Xandikos 412: both mean "start again".
    loc = h.make_calendar("jsmith")
    h.put(loc, spec("a"))
    h.put(loc, spec("b"))
    src = h.source()
    first = sync(src, loc)
    known = known_of(first)
    h.delete(loc, "b")
    bogus = "http://radicale.org/ns/sync/" + "0" * 64 if h.server.kind == "radicale" else "0" * 40
    cs = sync(src, loc, json.dumps({"token": bogus}), known)
    assert cs.full
    assert cs.deletes == [expected_href(loc, "b")]
    assert cs.upserts == []  # "a" is unchanged: not fetched again
    assert cs.requests == 2  # the refused REPORT and the token-less one; nothing to multiget


def test_radicale_tombstones_on_a_tokenless_sync_are_not_upserted(
    radicale: CalDavHarness,
) -> None:
    loc = radicale.make_calendar("jsmith")
    radicale.put(loc, spec("alive"))
    radicale.put(loc, spec("dead"))
    radicale.delete(loc, "dead")
    # Precondition: the server really lists the deleted item on a token-less sync.
    client = DAVClient(
        url=radicale.server.url,
        username=radicale.user,
        password=radicale.password,
        enable_rfc6764=False,
    )
    client.session.trust_env = False
    cal = client.calendar(url=radicale.server.url + loc)
    assert cal.get_objects_by_sync_token(None, disable_fallback=True).deleted_urls
    client.close()

    cs = sync(radicale.source(), loc)
    assert [i.href for i in cs.upserts] == [expected_href(loc, "alive")]
    assert all(i.data for i in cs.upserts)


# --- getctag fallback ------------------------------------------------------------------------


def test_ctag_fallback_costs_one_request_when_nothing_changed(h: CalDavHarness) -> None:
    loc = h.make_calendar("jsmith")
    for uid in ("a", "b", "c"):
        h.put(loc, spec(uid))
    src = h.source()
    # A state in fallback mode, as left by a server without sync-collection.
    first = sync(src, loc, json.dumps({"ctag": "unknown"}))
    assert first.full and len(first.upserts) == 3
    assert first.requests == 3  # getctag, depth-1 getetag, one multiget
    assert "ctag" in json.loads(first.state or "{}")
    known = known_of(first)

    idle = sync(src, loc, first.state, known)
    assert idle.requests == 1 and idle.upserts == [] and idle.deletes == []

    h.delete(loc, "b")
    h.put(loc, spec("c", summary="HV Changed"))
    cs = sync(src, loc, idle.state, known)
    assert cs.deletes == [expected_href(loc, "b")]
    assert [i.href for i in cs.upserts] == [expected_href(loc, "c")]
    assert cs.requests == 3


# --- concurrency and lifecycle ---------------------------------------------------------------


def test_concurrent_syncs_share_a_small_client_pool(h: CalDavHarness) -> None:
    locs = [h.make_calendar(f"staff{i}") for i in range(8)]
    for n, loc in enumerate(locs):
        for j in range(n + 1):
            h.put(loc, spec(f"s{n}-{j}", hours=j))
    src = h.source()

    def run(loc: str) -> tuple[str, ChangeSet]:
        return loc, sync(src, loc)

    for _ in range(3):  # a new executor each cycle, as an engine might do
        with ThreadPoolExecutor(4) as pool:
            results = dict(pool.map(run, locs))
        for n, loc in enumerate(locs):
            assert {i.href for i in results[loc].upserts} == {
                expected_href(loc, f"s{n}-{j}") for j in range(n + 1)
            }
            assert results[loc].requests == 2
    assert len(src._pool) <= 4  # clients are reused, not one per thread per cycle
    src.close()
    src.close()  # idempotent
    # A closed source may be used again: it reconnects lazily.
    assert sync(src, locs[0]).upserts


def test_constructor_does_no_io_and_reads_the_secret_lazily() -> None:
    calls: list[str] = []

    def secret(field: str) -> str:
        calls.append(field)
        return "pw"

    src = CalDavSource(
        "lazy",
        options("http://127.0.0.1:9/", username="u", password=SecretRef(env="X")),
        secret,
    )
    assert calls == []
    src.close()
    with pytest.raises(SourceError):
        sync(src, "u/cal/")
    assert calls == ["password"]


# --- errors ----------------------------------------------------------------------------------


def test_wrong_password_is_auth_error_without_personal_data(h: CalDavHarness) -> None:
    loc = h.make_calendar("jsmith")
    src = CalDavSource(
        "staff-caldav",
        options(h.server.url, username=h.user, password=SecretRef(env="X")),
        lambda _f: "wrong",
    )
    with pytest.raises(AuthError) as info:
        sync(src, loc)
    msg = str(info.value)
    assert "401" in msg and "staff-caldav" in msg
    assert h.user not in msg and "jsmith" not in msg and "wrong" not in msg


def test_someone_elses_calendar_is_permission_denied(radicale_server: SharedServer) -> None:
    owner, other = CalDavHarness(radicale_server), CalDavHarness(radicale_server)
    try:
        loc = owner.make_calendar("jsmith")
        with pytest.raises(AuthError, match="403"):
            sync(other.source(), loc)
    finally:
        owner.close()
        other.close()


def test_missing_calendar_is_permanent_source_error(h: CalDavHarness) -> None:
    loc = h.make_calendar("jsmith").rstrip("/") + "-missing/"
    with pytest.raises(SourceError) as info:
        sync(h.source(), loc)
    assert info.value.permanent and not isinstance(info.value, AuthError)
    assert "404" in str(info.value) and "jsmith" not in str(info.value)


def test_connection_refused_is_transient() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    src = CalDavSource("down", options(f"http://127.0.0.1:{port}/"), lambda _f: "")
    with pytest.raises(SourceError) as info:
        sync(src, "u/cal/")
    assert not info.value.permanent and "connect" in str(info.value)


def test_timeout_is_transient() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # accepts the connection, never answers
        port = listener.getsockname()[1]
        src = CalDavSource("slow", options(f"http://127.0.0.1:{port}/", timeout=0.3), lambda _f: "")
        with pytest.raises(SourceError) as info:
            sync(src, "u/cal/")
    assert not info.value.permanent and "timed out" in str(info.value)


class _Canned(BaseHTTPRequestHandler):
    status = 500
    body = b""
    headers_out: ClassVar[dict[str, str]] = {}

    def _reply(self) -> None:
        self.send_response(self.status)
        for k, v in self.headers_out.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_REPORT = do_PROPFIND = do_GET = _reply

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[Callable[..., str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> str:
        handler = type(
            "H", (_Canned,), {"status": status, "body": body, "headers_out": headers or {}}
        )
        srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        if tls is not None:
            srv.socket = tls.wrap_socket(srv.socket, server_side=True)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        scheme = "https" if tls else "http"
        return f"{scheme}://127.0.0.1:{srv.server_address[1]}/"

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize(
    ("status", "permanent"), [(500, False), (502, False), (400, True), (409, False)]
)
def test_http_errors_are_translated(
    canned: Callable[..., str], status: int, permanent: bool
) -> None:
    src = CalDavSource("srv", options(canned(status, b"oops")), lambda _f: "")
    with pytest.raises(SourceError) as info:
        sync(src, "u/cal/")
    assert info.value.permanent is permanent and str(status) in str(info.value)
    assert not isinstance(info.value, AuthError)


def test_busy_server_passes_retry_after_on(canned: Callable[..., str]) -> None:
    src = CalDavSource("srv", options(canned(503, b"", {"Retry-After": "120"})), lambda _f: "")
    with pytest.raises(SourceError) as info:
        sync(src, "u/cal/")
    assert not info.value.permanent and info.value.retry_after == 120


def test_malformed_reply_is_a_source_error(canned: Callable[..., str]) -> None:
    body = b"<?xml version='1.0'?><multistatus xmlns='DAV:'><response><href>"
    src = CalDavSource(
        "srv", options(canned(207, body, {"Content-Type": "application/xml"})), lambda _f: ""
    )
    with pytest.raises(SourceError):
        sync(src, "u/cal/")


# --- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_url(canned: Callable[..., str], ca: trustme.CA) -> str:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    return canned(404, b"", tls=ctx)  # a 404 proves the TLS handshake succeeded


def test_untrusted_certificate_is_refused_even_if_the_environment_trusts_it(
    tls_url: str, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "env-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(bundle))
    with pytest.raises(SourceError) as info:
        sync(CalDavSource("tls", options(tls_url), lambda _f: ""), "u/cal/")
    assert info.value.permanent and "TLS" in str(info.value)


def test_ca_file_and_verify_tls_false_are_honoured(
    tls_url: str, ca: trustme.CA, tmp_path: Path
) -> None:
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    for opts in (options(tls_url, ca_file=pem), options(tls_url, verify_tls=False)):
        with pytest.raises(SourceError, match="404"):
            sync(CalDavSource("tls", opts, lambda _f: ""), "u/cal/")


def test_locator_on_another_host_is_refused_before_any_request() -> None:
    calls: list[str] = []
    src = CalDavSource(
        "srv",
        options("http://127.0.0.1:9/dav/", username="u", password=SecretRef(env="X")),
        lambda f: calls.append(f) or "pw",
    )
    with pytest.raises(SourceError, match="outside") as info:
        sync(src, "https://evil.example/u/cal/")
    assert info.value.permanent and calls == []
