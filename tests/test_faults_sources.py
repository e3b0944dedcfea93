"""Every source behind a fault proxy: stalls, drips, resets and 500/503/401 replies.

Real servers (Radicale for CalDAV and for an ICS URL, since Radicale serves a calendar
collection as one ``text/calendar`` on GET; the EWS and Graph fakes, speaking their wire
protocols over HTTP and HTTPS) with :class:`tests.faults.FaultProxy` in front, driven through
each source's real client library. For every fault the sync must end with a
:class:`SourceError` that says what happened (transient, or permanent for a 401) within the
call's deadline, not the read timeout; and the next sync after the fault clears must work.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from syncd.domain.model import Window
from syncd.errors import AuthError, SourceError
from syncd.secrets import SecretRef
from syncd.sources.base import ChangeSet, Source
from syncd.sources.caldav import CalDavOptions, CalDavSource
from syncd.sources.ics import IcsOptions, IcsSource
from tests.faults import Drip, Fault, FaultProxy, Reset, Stall, Status
from tests.harness import EventSpec
from tests.harness.caldav import CalDavHarness
from tests.servers import SharedServer

LON = ZoneInfo("Europe/London")
START = datetime.now(LON).replace(hour=0, minute=0, second=0, microsecond=0)
WINDOW = Window(START, START + timedelta(days=14))
DEADLINE = 3.0
# The deadline cuts the call; the margin only absorbs a loaded machine. Without deadlines a
# drip of one byte a second under a 30 s read timeout runs for many minutes, a stall for 30 s.
MARGIN = 20.0

pytestmark = pytest.mark.timeout(300)


def event() -> EventSpec:
    start = START + timedelta(days=1, hours=10)
    return EventSpec(
        uid="fault-1",
        summary="HV Patel family",
        start=start,
        end=start + timedelta(hours=1),
        location="12 Acacia Avenue, Matlock DE4 3LT",
        description="Contact 07911 123456. Going straight home after",
    )


@dataclass
class Rig:
    """One source pointed at a proxy in front of its server, and the calendar to read."""

    proxy: FaultProxy
    source: Source
    locator: str


def _upstream(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


@contextlib.contextmanager
def caldav_rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    server: SharedServer = request.getfixturevalue("radicale_server")
    h = CalDavHarness(server)
    cal = h.make_calendar("faults")
    h.put(cal, event())
    with FaultProxy(_upstream(server.url)) as proxy:
        opts = CalDavOptions(
            url=proxy.url + urlsplit(server.url).path,
            username=h.user,
            password=SecretRef(env="UNUSED"),
            deadline_seconds=DEADLINE,
        )
        src = CalDavSource("dav", opts, lambda _f: h.password)
        try:
            yield Rig(proxy, src, "/" + cal)
        finally:
            src.close()
            h.close()


@contextlib.contextmanager
def ics_rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    server: SharedServer = request.getfixturevalue("radicale_server")
    h = CalDavHarness(server)
    cal = h.make_calendar("faults-ics")
    h.put(cal, event())
    with FaultProxy(_upstream(server.url)) as proxy:
        opts = IcsOptions(
            username=h.user, password=SecretRef(env="UNUSED"), deadline_seconds=DEADLINE
        )
        src = IcsSource("feed", opts, lambda _f: h.password)
        try:
            yield Rig(proxy, src, proxy.url + urlsplit(server.url).path + cal)
        finally:
            src.close()
            h.close()


@contextlib.contextmanager
def ews_rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    from tests.harness.ews import EwsHarness

    h = EwsHarness()
    box = h.make_calendar("amira")
    h.put(box, event())
    with FaultProxy(_upstream(h.fake.url)) as proxy:
        endpoint = proxy.url + urlsplit(h.fake.url).path
        src = h.source(service_endpoint=endpoint, deadline_seconds=DEADLINE)
        try:
            yield Rig(proxy, src, box)
        finally:
            src.close()
            h.close()


@contextlib.contextmanager
def graph_rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    from tests.harness.graph import GraphHarness

    h = GraphHarness(tmp_path)
    box = h.make_calendar("amira")
    h.put(box, event())
    # The proxy speaks TLS both ways: to syncd with a certificate from the fake's CA, to the
    # fake as a client trusting it. Only Graph calls go through it; sign-in goes direct.
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    h.server.ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    upstream_tls = ssl.create_default_context(cafile=str(h.server.ca_file))
    with FaultProxy(
        _upstream(h.server.base_url), server_tls=server_tls, upstream_tls=upstream_tls
    ) as proxy:
        h.server.public_graph_url = proxy.url + "/v1.0"
        src = h.graph_source(graph_url=proxy.url + "/v1.0", deadline_seconds=DEADLINE)
        try:
            yield Rig(proxy, src, box)
        finally:
            src.close()
            h.close()


RIGS: dict[str, Callable[[pytest.FixtureRequest, Path], contextlib.AbstractContextManager[Rig]]]
RIGS = {"caldav": caldav_rig, "ics-url": ics_rig, "ews": ews_rig, "graph": graph_rig}

FAULTS: dict[str, Fault] = {
    "stall": Stall(),
    "drip": Drip(every=1.0),
    "reset": Reset(),
    "500": Status(500),
    "503-retry-after": Status(503, {"Retry-After": "7"}),
    "401": Status(401, {"WWW-Authenticate": 'Basic realm="x"'}),
}


@pytest.fixture(params=list(RIGS))
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    with RIGS[request.param](request, tmp_path) as r:
        yield r


def sync(rig: Rig, state: str | None, known: dict[str, str]) -> ChangeSet:
    return rig.source.sync(rig.locator, state, known, WINDOW)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_fault_ends_the_sync_in_time_with_an_error_that_says_what_happened(
    rig: Rig, fault: str
) -> None:
    first = sync(rig, None, {})
    assert len(first.upserts) == 1, "the clean sync through the proxy read the visit"
    known = {i.href: i.etag for i in first.upserts}

    rig.proxy.set(FAULTS[fault])
    started = time.monotonic()
    with pytest.raises(SourceError) as caught:
        sync(rig, first.state, known)
    took = time.monotonic() - started
    err: Any = caught.value

    assert took < DEADLINE + MARGIN, f"{fault}: took {took:.1f}s, the deadline is {DEADLINE}s"
    if fault == "401":
        assert isinstance(err, AuthError) and err.permanent
    else:
        assert not isinstance(err, AuthError) and not err.permanent, str(err)
    if fault == "503-retry-after":
        assert err.retry_after == pytest.approx(7, abs=1)
    for word in ("Patel", "Acacia", "07911"):
        assert word not in str(err)

    # The fault clears: the next sync reads the calendar again, from the same state.
    rig.proxy.set(None)
    again = sync(rig, first.state, known)
    assert not again.deletes


def test_a_dripping_server_costs_one_deadline_per_call_not_per_byte(rig: Rig) -> None:
    """Four syncs against a drip, one after another: each is cut at its own deadline."""
    first = sync(rig, None, {})
    known = {i.href: i.etag for i in first.upserts}
    rig.proxy.set(Drip(every=0.5))
    started = time.monotonic()
    for _ in range(4):
        with pytest.raises(SourceError):
            sync(rig, first.state, known)
    assert time.monotonic() - started < 4 * DEADLINE + MARGIN
