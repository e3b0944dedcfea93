"""TLS on every source: the system trust store by default (EWS included, which used to
trust only certifi's bundle), ``ca_file`` and ``verify_tls`` honoured, and TLS failures
reported as TLS failures, permanent at once, in words that fit the fault: an https:// URL
pointing at a plain-HTTP port is not an "untrusted certificate".

Exchange is the fake EWS server behind a TLS-terminating proxy whose certificate comes
from a trustme CA, as a council's internal CA would issue it."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import trustme

from syncd.config import parse_config
from syncd.errors import ConfigError, SourceError
from syncd.sources.base import Source, Window
from syncd.sources.caldav import CalDavOptions, CalDavSource
from syncd.sources.ews import EwsSource
from syncd.sources.ics import IcsOptions, IcsSource
from tests.fakes.tls_proxy import TlsProxy
from tests.harness import EventSpec
from tests.harness.ews import EwsHarness
from tests.harness.graph import GraphHarness

LONDON = ZoneInfo("Europe/London")
WINDOW = Window(datetime(2025, 3, 10, tzinfo=LONDON), datetime(2025, 4, 7, tzinfo=LONDON))
START = datetime(2025, 3, 12, 10, tzinfo=LONDON)
VISIT = EventSpec(uid="v1", summary="HV Patel", start=START, end=START + timedelta(hours=1))
NOT_TLS = "did not answer in TLS"


@dataclass
class Exchange:
    h: EwsHarness
    proxy: TlsProxy
    ca_pem: Path
    mailbox: str

    @property
    def https_endpoint(self) -> str:
        path = self.h.fake.url.split("/", 3)[3]
        return f"{self.proxy.url}/{path}"

    def source(self, **options: Any) -> Source:
        return self.h.source(service_endpoint=self.https_endpoint, **options)

    def sync(self, **options: Any) -> int:
        src = self.source(**options)
        try:
            return len(src.sync(self.mailbox, None, {}, WINDOW).upserts)
        finally:
            src.close()


@pytest.fixture
def exchange(tmp_path: Path) -> Iterator[Exchange]:
    h = EwsHarness()
    mailbox = h.make_calendar("jsmith")
    h.put(mailbox, VISIT)
    ca = trustme.CA()
    pem = tmp_path / "council-ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    host, port = h.fake.url.split("/")[2].split(":")
    proxy = TlsProxy(ca, (host, int(port)))
    yield Exchange(h, proxy, pem, mailbox)
    proxy.close()
    h.close()


def test_ews_refuses_a_certificate_outside_the_system_store_whatever_the_environment(
    exchange: Exchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests would trust these; the source's policy is the whole truth.
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.setenv(var, str(exchange.ca_pem))
    with pytest.raises(SourceError) as info:
        exchange.sync()
    err = info.value
    assert err.permanent, "a certificate problem needs a human: blind at once"
    assert "certificate was refused" in str(err) and "ca_file" in str(err)
    assert "TransportError" not in str(err)


def test_ews_honours_ca_file_and_verify_tls(exchange: Exchange) -> None:
    assert exchange.sync(ca_file=exchange.ca_pem) == 1
    assert exchange.sync(verify_tls=False) == 1


def test_ews_trusts_the_system_store_by_default(
    exchange: Exchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The council's CA installed in the operating system's store (where OpenSSL's
    compiled-in paths point) is enough; no ca_file, and no certifi."""
    real = ssl.get_default_verify_paths()
    store = real._replace(openssl_cafile=str(exchange.ca_pem), openssl_capath="/nonexistent")
    monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: store)
    assert exchange.sync() == 1


def test_two_ews_sources_keep_their_own_tls_settings(exchange: Exchange) -> None:
    """No process-wide adapter: a lax source does not make a strict one lax."""
    lax = exchange.source(verify_tls=False)
    strict = exchange.source()
    try:
        assert lax.sync(exchange.mailbox, None, {}, WINDOW).upserts
        with pytest.raises(SourceError, match="certificate was refused"):
            strict.sync(exchange.mailbox, None, {}, WINDOW)
    finally:
        lax.close()
        strict.close()


# --- https:// to a plain-HTTP port, on every source --------------------------------------------


class _Plain(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PROPFIND = do_REPORT = do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def plain_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Plain)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()
    thread.join(5)


def _assert_not_tls(err: SourceError) -> None:
    assert err.permanent and NOT_TLS in str(err), str(err)
    assert "certificate" not in str(err).lower()


def test_https_to_a_plain_http_exchange_is_not_called_a_certificate_failure(
    exchange: Exchange,
) -> None:
    plain = exchange.h.fake.url.replace("http://", "https://", 1)
    src = exchange.h.source(service_endpoint=plain)
    with pytest.raises(SourceError) as info:
        src.sync(exchange.mailbox, None, {}, WINDOW)
    _assert_not_tls(info.value)


def test_https_to_a_plain_http_port_caldav_and_ics(plain_port: int) -> None:
    url = f"https://127.0.0.1:{plain_port}/"
    dav = CalDavSource("dav", CalDavOptions(url=url), lambda _f: "")
    with pytest.raises(SourceError) as info:
        dav.sync("u/cal/", None, {}, WINDOW)
    _assert_not_tls(info.value)
    ics = IcsSource("ics", IcsOptions(), lambda _f: "")
    with pytest.raises(SourceError) as info:
        ics.sync(f"{url}c.ics", None, {}, WINDOW)
    _assert_not_tls(info.value)
    ics.close()
    dav.close()


def test_https_to_a_plain_http_port_graph(
    tmp_path: Path, plain_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNCD_GRAPH_SECRET", "harness-secret-value")
    h = GraphHarness(tmp_path)
    try:
        address = h.make_calendar("amira.khan")
        src = h.graph_source(graph_url=f"https://127.0.0.1:{plain_port}/v1.0")
        with pytest.raises(SourceError) as info:
            src.sync(address, None, {}, WINDOW)
        _assert_not_tls(info.value)
        src.close()
    finally:
        h.close()


# --- URLs need a scheme (check-config) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "key"),
    [
        ({"kind": "caldav", "url": "dav.council.example/dav/"}, "url"),
        ({"kind": "caldav", "url": "ftp://dav.council.example/"}, "url"),
        (
            {
                "kind": "ews",
                "service_endpoint": "mail.council.example/EWS/Exchange.asmx",
                "username": "svc",
                "password": {"env": "X"},
            },
            "service_endpoint",
        ),
    ],
)
def test_a_source_url_without_a_scheme_is_a_config_error_naming_the_key(
    source: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"sources": [{"name": "s", **source}]}).source_options(0)
    assert key in str(info.value) and "://" in str(info.value)


def test_ews_tls_options_are_documented_and_typed() -> None:
    opts = EwsSource.Options.model_validate(
        {
            "service_endpoint": "https://mail.council.example/EWS/Exchange.asmx",
            "username": "svc",
            "password": {"env": "X"},
            "ca_file": "/etc/ssl/certs/council-ca.pem",
            "verify_tls": True,
        }
    )
    assert opts.ca_file == Path("/etc/ssl/certs/council-ca.pem") and opts.verify_tls
