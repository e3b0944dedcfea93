"""GraphSource against the local fake Entra ID + Graph (real msal, real httpx, real HTTPS)."""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pydantic
import pytest

from syncd.domain.model import Occurrence
from syncd.errors import AuthError, InputError, SourceError
from syncd.secrets import SecretRef
from syncd.sources.base import ChangeSet, Window
from syncd.sources.graph import mapping as graph_map
from syncd.sources.graph import notify as graph_notify
from syncd.sources.graph.source import GraphOptions, GraphSource, SyncRequest
from tests.fakes.graph_server import FakeGraph, Reply
from tests.harness import EventSpec
from tests.harness.graph import GraphHarness

DATA = Path(__file__).parent / "data" / "interop" / "ms365-calendar"
WINDOW = Window(datetime(2026, 8, 31, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC))
NOW = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
ADDRESS = "jsmith@council.example"


def fixture(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return doc


def visit(uid: str, start: datetime, summary: str = "HV Smith family", **kw: Any) -> EventSpec:
    return EventSpec(uid=uid, summary=summary, start=start, end=start + timedelta(hours=1), **kw)


class Local:
    """The caller's copy of one calendar, kept the way the store keeps it."""

    def __init__(self, source: GraphSource, locator: str = ADDRESS, window: Window = WINDOW):
        self.source, self.locator, self.window = source, locator, window
        self.items: dict[str, Occurrence] = {}
        self.etags: dict[str, str] = {}
        self.state: str | None = None

    def sync(self, window: Window | None = None) -> ChangeSet:
        cs = self.source.sync(self.locator, self.state, dict(self.etags), window or self.window)
        self.apply(cs)
        return cs

    def apply(self, cs: ChangeSet) -> None:
        for href in cs.deletes:
            self.items.pop(href, None)
            self.etags.pop(href, None)
        for item in cs.upserts:
            self.items[item.href] = Occurrence.from_json(item.data)
            self.etags[item.href] = item.etag
        self.state = cs.state

    def summaries(self) -> set[str]:
        return {o.summary for o in self.items.values()}


@pytest.fixture
def h(tmp_path: Path) -> Iterator[GraphHarness]:
    harness = GraphHarness(tmp_path)
    harness.server.clock = lambda: NOW
    harness.make_calendar("jsmith")
    yield harness
    harness.close()


def day(d: int, hour: int, month: int = 9) -> datetime:
    return datetime(2026, month, d, hour, tzinfo=UTC)


# --- mapping Graph JSON (the vendored real-shaped fixtures) ----------------------------------


def test_maps_calendar_view_fixture_html_body_and_all_day_instance() -> None:
    timed, all_day = fixture("calendar1_calendar_view.json")["value"]
    occ = graph_map.to_occurrence(timed)
    assert occ.uid == "event1" and occ.recurrence_id == ""
    assert occ.summary == "Test event 1 calendar1"
    assert occ.start == datetime(2020, 1, 1, tzinfo=UTC)
    assert occ.end == datetime(2020, 1, 2, 23, 59, 59, tzinfo=UTC)
    assert occ.location == "Test Location" and occ.postal_code == ""
    assert occ.description == "Test"  # Word's HTML, its <style> and &nbsp; gone

    occ = graph_map.to_occurrence(all_day)
    assert occ.all_day and occ.start == date(2020, 1, 1) and occ.end == date(2020, 1, 2)
    assert occ.uid == "master2"  # an instance is named by its series
    assert occ.recurrence_id == "2020-01-01"
    assert occ.description == "Plain Text"


def test_maps_organizer_email_address_from_the_fixture() -> None:
    timed, all_day = fixture("calendar1_calendar_view.json")["value"]
    assert timed["organizer"]["emailAddress"]["name"] == "John Doe"  # the name is not kept
    assert graph_map.to_occurrence(timed).organizer == "john@nomail.com"
    assert graph_map.to_occurrence(all_day).organizer == ""  # no organizer object at all


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (
            {"emailAddress": {"name": "Jo", "address": "Jo.Smith@Council.Example"}},
            "jo.smith@council.example",
        ),
        ({"emailAddress": {"name": "Jo"}}, ""),
        ({"emailAddress": None}, ""),
        ({"emailAddress": {"address": 7}}, ""),
        (None, ""),
    ],
)
def test_organizer_shapes(value: object, want: str) -> None:
    timed = dict(fixture("calendar1_calendar_view.json")["value"][0], organizer=value)
    assert graph_map.to_occurrence(timed).organizer == want


def test_maps_categories_and_structured_address() -> None:
    occ = graph_map.to_occurrence(fixture("calendar1_event_categories.json"))
    assert occ.categories == ("Red category", "Project X")
    assert occ.all_day and occ.start == date(2026, 3, 22)
    assert occ.description == "Join the meeting now"

    occ = graph_map.to_occurrence(fixture("calendar1_series_master.json"))
    assert occ.location == "Room A, 1 Main Street, Springfield, 12345"
    assert occ.postal_code == "12345"


def test_address_already_in_display_name_is_not_repeated() -> None:
    loc = {
        "displayName": "4 Mill Lane, Matlock DE4 3LT",
        "address": {"street": "4 Mill Lane", "postalCode": "DE4 3LT", "city": "Matlock"},
    }
    assert graph_map.location_text(loc) == "4 Mill Lane, Matlock DE4 3LT"
    assert graph_map.postal_code(loc) == "DE4 3LT"


@pytest.mark.parametrize(
    ("wall", "zone_name", "utc"),
    [
        (
            "2026-10-26T10:00:00.0000000",
            "Pacific Standard Time",
            datetime(2026, 10, 26, 17, tzinfo=UTC),
        ),
        (
            "2026-11-02T10:00:00.0000000",
            "Pacific Standard Time",
            datetime(2026, 11, 2, 18, tzinfo=UTC),
        ),
        (
            "2025-07-01T09:30:00.0000000",
            "GMT Standard Time",
            datetime(2025, 7, 1, 8, 30, tzinfo=UTC),
        ),
        (
            "2025-01-01T09:30:00.1234567",
            "Europe/London",
            datetime(2025, 1, 1, 9, 30, 0, 123456, tzinfo=UTC),
        ),
        ("2025-01-01T09:30:00.0000000", "UTC", datetime(2025, 1, 1, 9, 30, tzinfo=UTC)),
    ],
)
def test_windows_and_iana_zone_names(wall: str, zone_name: str, utc: datetime) -> None:
    assert graph_map.parse_datetime_tz({"dateTime": wall, "timeZone": zone_name}, "start") == utc


def test_unknown_zone_is_an_error_naming_the_field_not_the_value() -> None:
    event = fixture("calendar1_series_exception.json")
    event["start"] = {"dateTime": "2026-11-02T16:00:00", "timeZone": "tzone://Microsoft/Custom"}
    with pytest.raises(SourceError) as info:
        graph_map.to_occurrence(event)
    assert "tzone" not in str(info.value) and "Weekly sync" not in str(info.value)


# --- sync through the fake -------------------------------------------------------------------


def put_fixture_series(h: GraphHarness) -> None:
    master = fixture("calendar1_series_master.json")
    h.server.put_event(ADDRESS, master, event_id="master3")
    # Outlook keeps the original start (10:00 Pacific, after the US change = 18:00 UTC).
    h.server.put_exception(
        ADDRESS, "master3", day(2, 18, 11), fixture("calendar1_series_exception.json")
    )


def test_recurring_series_across_us_dst_with_an_exception(h: GraphHarness) -> None:
    put_fixture_series(h)
    local = Local(h.graph_source())
    cs = local.sync()
    assert cs.full and not cs.deletes
    occs = sorted(local.items.values(), key=lambda o: o.start)
    assert {o.uid for o in occs} == {"master3"}
    starts = [o.start for o in occs]
    # 10:00 Pacific: 17:00 UTC under PDT, 18:00 UTC once the US clocks go back (1 November).
    assert starts[:8] == [day(7, 17) + timedelta(weeks=i) for i in range(8)]
    assert day(2, 16, 11) in starts  # the exception, moved
    assert day(9, 18, 11) in starts and day(2, 18, 11) not in starts
    moved = next(o for o in occs if o.start == day(2, 16, 11))
    assert moved.recurrence_id == "2026-11-02T18:00:00+00:00"
    assert moved.description == "Weekly sync - agenda: budget"
    assert len({o.key for o in occs}) == len(occs)


def test_paging_then_delta_link_continuation(h: GraphHarness) -> None:
    for i in range(25):
        h.put(ADDRESS, visit(f"v{i:02}", day(2 + i % 20, 9 + i % 8)))
    src = h.graph_source(page_size=10)
    local = Local(src)
    cs = local.sync()
    assert cs.full and cs.requests == 3 and len(cs.upserts) == 25
    first = [s for s in h.server.seen if s.mailbox == ADDRESS]
    assert first[0].query.keys() == {"startDateTime", "endDateTime"}
    assert "$skiptoken" in first[1].query and "$skiptoken" in first[2].query
    assert all(s.prefer["odata.maxpagesize"] == "10" for s in first)
    assert all(s.prefer["outlook.timezone"] == "UTC" for s in first)
    assert json.loads(cs.state or "")["delta"].startswith(h.server.graph_url)

    h.server.seen.clear()
    cs = local.sync()
    assert not cs.full and cs.requests == 1 and not cs.upserts and not cs.deletes
    assert "$deltatoken" in h.server.seen[0].query


def test_creations_updates_and_removed_rows(h: GraphHarness) -> None:
    h.put(ADDRESS, visit("keep", day(2, 9)))
    h.put(ADDRESS, visit("edit", day(2, 10)))
    h.put(ADDRESS, visit("gone", day(2, 11)))
    h.put(ADDRESS, visit("away", day(2, 12)))
    local = Local(h.graph_source())
    local.sync()
    old = dict(local.etags)
    h.server.served.clear()

    h.put(ADDRESS, visit("new", day(3, 9), summary="HV New"))
    h.put(
        ADDRESS, visit("edit", day(2, 10), location="4 Mill Lane, Matlock", postal_code="DE4 3LT")
    )
    h.delete(ADDRESS, "gone")
    h.put(ADDRESS, visit("away", day(2, 12, month=12)))  # moved out of the window
    cs = local.sync()

    assert not cs.full
    assert {i.href for i in cs.upserts} == {"new", "edit"}
    assert sorted(cs.deletes) == ["away", "gone"]
    assert local.etags["edit"] != old["edit"]
    assert local.items["edit"].postal_code == "DE4 3LT"
    assert local.items["edit"].location == "4 Mill Lane, Matlock, DE4 3LT"
    reasons = {r["id"]: r["@removed"]["reason"] for r in h.server.served if "@removed" in r}
    assert reasons == {"gone": "deleted", "away": "changed"}


def test_replayed_rows_and_a_replayed_delta_link_are_harmless(h: GraphHarness) -> None:
    h.server.replay_rows = True  # every row delivered twice
    h.put(ADDRESS, visit("a", day(2, 9)))
    h.put(ADDRESS, visit("b", day(2, 10)))
    local = Local(h.graph_source())
    cs = local.sync()
    assert sorted(i.href for i in cs.upserts) == ["a", "b"]
    before_change = local.state

    h.put(ADDRESS, visit("a", day(2, 9), summary="HV Changed"))
    h.delete(ADDRESS, "b")
    cs = local.sync()
    assert [i.href for i in cs.upserts] == ["a"] and cs.deletes == ["b"]

    # A crash after storing the items but before storing the state: the same round again.
    again = local.source.sync(ADDRESS, before_change, dict(local.etags), WINDOW)
    assert again.upserts == [] and again.deletes == [] and not again.full


def test_a_new_window_starts_a_new_round(h: GraphHarness) -> None:
    h.put(ADDRESS, visit("a", day(2, 9)))
    h.put(ADDRESS, visit("late", day(1, 9, month=12)))
    local = Local(h.graph_source())
    local.sync()
    assert set(local.items) == {"a"}
    h.server.seen.clear()
    later = Window(WINDOW.start + timedelta(days=7), WINDOW.end + timedelta(days=7))
    cs = local.sync(later)
    assert cs.full and {i.href for i in cs.upserts} == {"late"} and cs.deletes == ["a"]
    assert h.server.seen[0].query["startDateTime"] == "2026-09-07T00:00:00Z"


def test_expired_delta_token_410_gives_a_full_resync(h: GraphHarness) -> None:
    h.put(ADDRESS, visit("a", day(2, 9)))
    h.put(ADDRESS, visit("b", day(2, 10)))
    local = Local(h.graph_source())
    local.sync()
    h.delete(ADDRESS, "b")
    h.put(ADDRESS, visit("c", day(2, 11)))
    h.server.expire_delta_tokens()
    cs = local.sync()
    assert cs.full and cs.deletes == ["b"] and [i.href for i in cs.upserts] == ["c"]
    assert cs.requests == 2  # the 410, then the new round
    assert not local.sync().upserts


def test_skiptoken_expiring_mid_round_restarts_the_round(h: GraphHarness) -> None:
    for i in range(4):
        h.put(ADDRESS, visit(f"v{i}", day(2, 9 + i)))
    src = h.graph_source(page_size=2)
    first = src.sync(ADDRESS, None, {}, WINDOW)
    h.server.inject(Reply(410, {"error": {"code": "resyncRequired", "message": "x"}}))
    cs = src.sync(ADDRESS, None, {}, WINDOW)
    assert len(first.upserts) == len(cs.upserts) == 4 and cs.full


# --- throttling --------------------------------------------------------------------------------


def test_429_retry_after_is_honoured_without_sleeping(h: GraphHarness) -> None:
    h.put(ADDRESS, visit("a", day(2, 9)))
    h.server.throttle(2, retry_after="7")
    src = h.graph_source()
    cs = src.sync(ADDRESS, None, {}, WINDOW)
    assert [i.href for i in cs.upserts] == ["a"]
    assert h.slept == [7.0, 7.0] and cs.requests == 3


def test_503_without_retry_after_backs_off_exponentially(h: GraphHarness) -> None:
    h.put(ADDRESS, visit("a", day(2, 9)))
    h.server.throttle(3, retry_after=None, status=503)
    src = h.graph_source()
    src.sync(ADDRESS, None, {}, WINDOW)
    assert h.slept == [1.0, 2.0, 4.0]


def test_throttling_gives_up_after_bounded_retries_with_retry_after(h: GraphHarness) -> None:
    h.server.throttle(10, retry_after="3")
    src = h.graph_source(max_retries=2)
    with pytest.raises(SourceError) as info:
        src.sync(ADDRESS, None, {}, WINDOW)
    assert info.value.retry_after == 3.0 and not info.value.permanent
    assert h.slept == [3.0, 3.0] and src.http_requests == 3


def test_a_long_retry_after_goes_to_the_scheduler_not_to_sleep(h: GraphHarness) -> None:
    h.server.throttle(1, retry_after="600")
    with pytest.raises(SourceError) as info:
        h.graph_source().sync(ADDRESS, None, {}, WINDOW)
    assert info.value.retry_after == 600.0 and h.slept == []


def test_at_most_four_requests_in_flight_per_mailbox(h: GraphHarness) -> None:
    h.put(ADDRESS, visit("a", day(2, 9)))
    src = h.graph_source()
    src.sync(ADDRESS, None, {}, WINDOW)  # token and connection warm
    h.server.gate = threading.Event()
    results: list[object] = []

    def one() -> None:
        try:
            results.append(src.sync(ADDRESS, None, {}, WINDOW))
        except SourceError as exc:  # pragma: no cover - reported below
            results.append(exc)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    assert h.server.wait_in_flight(ADDRESS, 4, timeout=10)
    # Without the client-side limit the other four arrive at once and the fake answers 429.
    assert not h.server.wait_in_flight(ADDRESS, 5, timeout=0.3)
    h.server.gate.set()
    for t in threads:
        t.join(timeout=10)
    assert len(results) == 8 and all(isinstance(r, ChangeSet) for r in results)
    assert h.server.max_in_flight[ADDRESS] == 4


# --- $batch ------------------------------------------------------------------------------------


def test_sync_many_batches_mailboxes_and_keeps_errors_per_mailbox(h: GraphHarness) -> None:
    boxes = [h.make_calendar(f"sw{i:02}") for i in range(23)]
    for i, box in enumerate(boxes):
        for j in range(3):
            h.put(box, visit(f"{i}-{j}", day(2 + j, 9)))
    h.server.deny(boxes[5])
    src = h.graph_source(page_size=2)
    reqs = [SyncRequest(b, None, {}, WINDOW) for b in boxes]
    out = src.sync_many(reqs)
    assert isinstance(out[boxes[5]], AuthError)
    for i, box in enumerate(boxes):
        if i == 5:
            continue
        cs = out[box]
        assert isinstance(cs, ChangeSet) and cs.full
        assert sorted(u.href for u in cs.upserts) == [f"{i}-0", f"{i}-1", f"{i}-2"]
    # Two pages per mailbox, 20 mailboxes per POST: 2 + 2 round trips instead of 44 GETs.
    assert src.http_requests == 4
    assert all(s.batched for s in h.server.seen if s.mailbox)

    # The next round: every deltaLink in one POST, changes for one mailbox only.
    h.put(boxes[0], visit("0-new", day(9, 9)))
    states = {b: cs.state for b, cs in out.items() if isinstance(cs, ChangeSet)}
    known = {
        b: {u.href: u.etag for u in cs.upserts}
        for b, cs in out.items()
        if isinstance(cs, ChangeSet)
    }
    again = src.sync_many([SyncRequest(b, states[b], known[b], WINDOW) for b in states])
    assert src.http_requests == 6
    changed = {
        b: cs for b, cs in again.items() if isinstance(cs, ChangeSet) and (cs.upserts or cs.deletes)
    }
    assert list(changed) == [boxes[0]] and [u.href for u in changed[boxes[0]].upserts] == ["0-new"]


def test_sync_many_retries_throttled_and_expired_members(h: GraphHarness) -> None:
    a, b = ADDRESS, h.make_calendar("other")
    h.put(a, visit("a1", day(2, 9)))
    h.put(b, visit("b1", day(2, 9)))
    src = h.graph_source()
    first = src.sync_many([SyncRequest(a, None, {}, WINDOW), SyncRequest(b, None, {}, WINDOW)])
    h.server.expire_delta_tokens()
    h.server.throttle(1, retry_after="5")  # the first batched request (in batch order)
    reqs = []
    for box in (a, b):
        cs = first[box]
        assert isinstance(cs, ChangeSet)
        reqs.append(SyncRequest(box, cs.state, {u.href: u.etag for u in cs.upserts}, WINDOW))
    out = src.sync_many(reqs)
    assert all(isinstance(cs, ChangeSet) and cs.full and not cs.upserts for cs in out.values())
    assert h.slept == [5.0]


# --- auth and errors -------------------------------------------------------------------------


def test_token_is_fetched_lazily_cached_and_refreshed_on_401(h: GraphHarness) -> None:
    src = h.graph_source()
    assert h.server.token_requests == 0  # the constructor does no I/O
    src.sync(ADDRESS, None, {}, WINDOW)
    src.sync(ADDRESS, None, {}, WINDOW)
    assert h.server.token_requests == 1
    h.server.tokens.clear()  # revoked server-side; the secret is still good
    src.sync(ADDRESS, None, {}, WINDOW)
    assert h.server.token_requests == 2


def test_bad_secret_is_an_auth_error_with_a_clear_message(h: GraphHarness) -> None:
    h.secret = "wrong-secret-value"
    with pytest.raises(AuthError) as info:
        h.graph_source().sync(ADDRESS, None, {}, WINDOW)
    text = str(info.value)
    assert "AADSTS7000215" in text and "invalid client secret" in text
    assert "wrong-secret-value" not in text and "Trace ID" not in text
    assert info.value.permanent


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"tenant_id": "no-such-tenant"}, "tenant"),
        ({"client_id": "no-such-app"}, "AADSTS700016"),
    ],
)
def test_wrong_tenant_or_app_is_an_auth_error(
    h: GraphHarness, override: dict[str, str], expected: str
) -> None:
    with pytest.raises(AuthError) as info:
        h.graph_source(**override).sync(ADDRESS, None, {}, WINDOW)
    assert expected in str(info.value)


def test_mailbox_outside_the_access_policy_is_an_auth_error(h: GraphHarness) -> None:
    h.server.deny(ADDRESS)
    with pytest.raises(AuthError) as info:
        h.graph_source().sync(ADDRESS, None, {}, WINDOW)
    assert "application access policy" in str(info.value) and "ErrorAccessDenied" in str(info.value)
    assert ADDRESS not in str(info.value)


def test_unknown_mailbox_is_permanent_and_does_not_name_it(h: GraphHarness) -> None:
    with pytest.raises(SourceError) as info:
        h.graph_source().sync("nobody@council.example", None, {}, WINDOW)
    assert info.value.permanent and "ErrorInvalidUser" in str(info.value)
    assert "nobody" not in str(info.value)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, raw=b"<html>proxy error</html>"),
        Reply(200, {"unexpected": True}),
        Reply(200, {"value": [{"subject": "no id"}], "@odata.deltaLink": "x"}),
        Reply(200, {"value": [], "@odata.deltaLink": "https://evil.example/v1.0/steal"}),
        Reply(200, {"value": []}),
    ],
)
def test_malformed_responses_are_source_errors(h: GraphHarness, reply: Reply) -> None:
    h.server.inject(reply)
    with pytest.raises(SourceError) as info:
        h.graph_source().sync(ADDRESS, None, {}, WINDOW)
    assert not isinstance(info.value, AuthError)


def test_one_unreadable_event_is_a_problem_item_and_the_rest_still_sync(h: GraphHarness) -> None:
    good = {
        "id": "good",
        "changeKey": "k1",
        "subject": "HV Jones",
        "start": {"dateTime": "2026-09-02T09:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2026-09-02T10:00:00.0000000", "timeZone": "UTC"},
    }
    bad = {
        "id": "bad",
        "changeKey": "b1",
        "subject": "HV Smith family",
        "start": {"dateTime": "not a time", "timeZone": "UTC"},
        "end": None,
    }
    zone = {
        **good,
        "id": "zone",
        "changeKey": "z1",
        "start": {"dateTime": "2026-09-03T09:00:00", "timeZone": "tzone://Microsoft/Custom"},
    }
    link = f"{h.server.graph_url}/users/{ADDRESS}/calendarView/delta?$deltatoken=t1"
    h.server.inject(Reply(200, {"value": [good, bad, zone], "@odata.deltaLink": link}))
    src = h.graph_source()
    cs = src.sync(ADDRESS, None, {}, WINDOW)
    kinds = {i.href: i.kind for i in cs.upserts}
    assert kinds == {"good": "occurrence", "bad": "problem", "zone": "problem"}
    problems = {i.href: json.loads(i.data) for i in cs.upserts if i.kind == "problem"}
    assert problems["bad"] == {
        "uid": "bad",
        "summary": "HV Smith family",
        "message": "Graph event has an unreadable start",
    }
    assert problems["zone"]["message"] == "Graph event has an unknown time zone"
    assert all("tzone" not in p["message"] for p in problems.values())

    # Corrected in Outlook: the same id with a new change key replaces the problem item.
    fixed = {**bad, "changeKey": "b2", "start": good["start"], "end": good["end"]}
    h.server.inject(Reply(200, {"value": [fixed], "@odata.deltaLink": link}))
    known = {i.href: i.etag for i in cs.upserts}
    cs2 = src.sync(ADDRESS, cs.state, known, WINDOW)
    assert [(i.href, i.kind) for i in cs2.upserts] == [("bad", "occurrence")]


def test_server_errors_and_network_failures_are_transient(h: GraphHarness, tmp_path: Path) -> None:
    h.server.inject(Reply(500, {"error": {"code": "generalException", "message": "boom"}}))
    with pytest.raises(SourceError) as info:
        h.graph_source().sync(ADDRESS, None, {}, WINDOW)
    assert not info.value.permanent and "500" in str(info.value)

    src = h.graph_source()
    src.sync(ADDRESS, None, {}, WINDOW)
    h.server.stop()
    with pytest.raises(SourceError) as info:
        src.sync(ADDRESS, None, {}, WINDOW)
    assert not info.value.permanent


def test_untrusted_certificate_is_permanent(h: GraphHarness, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    import trustme

    trustme.CA().cert_pem.write_to_path(str(other))
    with pytest.raises(SourceError) as info:
        h.graph_source(ca_file=other).sync(ADDRESS, None, {}, WINDOW)
    assert info.value.permanent and "certificate" in str(info.value)


def test_certificate_credential(h: GraphHarness, tmp_path: Path) -> None:
    import trustme

    leaf = trustme.CA().issue_cert("syncd-app", key_type=trustme.KeyType.RSA)
    h.server.register_certificate(leaf.cert_chain_pems[0].bytes())
    pem = leaf.private_key_pem.bytes().decode() + leaf.cert_chain_pems[0].bytes().decode()
    opts = h.options(client_secret=None, certificate=SecretRef(env="SYNCD_GRAPH_CERT"))
    h.put(ADDRESS, visit("a", day(2, 9)))
    cs = GraphSource("m365", opts, lambda _f: pem).sync(ADDRESS, None, {}, WINDOW)
    assert [i.href for i in cs.upserts] == ["a"]

    stranger = trustme.CA().issue_cert("not-registered", key_type=trustme.KeyType.RSA)
    pem = stranger.private_key_and_cert_chain_pem.bytes().decode()
    with pytest.raises(AuthError, match="AADSTS700027"):
        GraphSource("m365", opts, lambda _f: pem).sync(ADDRESS, None, {}, WINDOW)
    with pytest.raises(AuthError, match="private key and the certificate"):
        GraphSource("m365", opts, lambda _f: "not a pem").sync(ADDRESS, None, {}, WINDOW)


def test_options_are_validated() -> None:
    base = {"tenant_id": "t", "client_id": "c"}
    with pytest.raises(pydantic.ValidationError):
        GraphOptions(**base)
    with pytest.raises(pydantic.ValidationError):
        GraphOptions(**base, client_secret=SecretRef(env="A"), certificate=SecretRef(env="B"))
    with pytest.raises(pydantic.ValidationError):
        GraphOptions(
            **base, client_secret=SecretRef(env="A"), graph_url="http://graph.example/v1.0"
        )


def test_server_ignoring_the_utc_preference_still_maps_windows_zones(h: GraphHarness) -> None:
    h.server.honour_timezone_preference = False
    put_fixture_series(h)
    ev = {
        "subject": "HV Pacific",
        "start": {"dateTime": "2026-11-03T09:00:00.0000000", "timeZone": "Pacific Standard Time"},
        "end": {"dateTime": "2026-11-03T10:00:00.0000000", "timeZone": "Pacific Standard Time"},
    }
    h.server.put_event(ADDRESS, ev, event_id="pst")
    local = Local(h.graph_source())
    local.sync()
    assert local.items["pst"].start == datetime(2026, 11, 3, 17, tzinfo=UTC)
    assert next(s for s in h.server.seen if s.mailbox).prefer["outlook.timezone"] == "UTC"


def test_no_personal_data_in_logs_or_errors(
    h: GraphHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h.put(
        ADDRESS,
        visit("a", day(2, 9), summary="HV Smith family", location="12 Acacia Avenue DE1 1AA"),
    )
    h.server.throttle(1, retry_after="2")
    h.graph_source().sync(ADDRESS, None, {}, WINDOW)
    h.server.deny(ADDRESS)
    with pytest.raises(SourceError) as info:
        h.graph_source().sync(ADDRESS, None, {}, WINDOW)
    # syncd at INFO and up; libraries (httpx logs URLs at INFO) at WARNING, as syncd.app.logs sets.
    texts = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= (logging.INFO if r.name.startswith("syncd") else logging.WARNING)
    ]
    texts.append(str(info.value))
    assert texts and all(
        secret not in t
        for t in texts
        for secret in ("jsmith", "Smith", "Acacia", "DE1 1AA", h.secret)
    )


# --- change notifications --------------------------------------------------------------------


class Webhook:
    """A stand-in for the lead's web layer: HTTPS, answering with graph_notify only."""

    def __init__(self, fake: FakeGraph, client_state: str):
        self.client_state = client_state
        self.subscriptions: dict[str, str] = {}
        self.outcomes: list[graph_notify.NotificationOutcome] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                answer = graph_notify.validation_response(query)
                if answer is None:
                    out = graph_notify.handle_notifications(
                        body, client_state=hook.client_state, subscriptions=hook.subscriptions
                    )
                    hook.outcomes.append(out)
                    answer = graph_notify.ValidationResponse(202, "text/plain", b"")
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        fake.ca.issue_cert("127.0.0.1").configure_cert(ctx)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/graph/notify"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhook_subscription_notification_then_sync_sees_the_correction(h: GraphHarness) -> None:
    h.put(ADDRESS, visit("a", day(2, 9), summary="HV Smith"))
    src = h.graph_source()
    local = Local(src)
    local.sync()
    hook = Webhook(h.server, client_state="s3cr3t-state")
    try:
        sub = src.subscribe(
            ADDRESS,
            notification_url=hook.url,
            client_state=hook.client_state,
            expires=graph_notify.subscription_expiry(NOW),
        )
        assert sub.expires == NOW + graph_notify.DEFAULT_LIFETIME and sub.locator == ADDRESS
        hook.subscriptions[sub.id] = ADDRESS

        h.put(
            ADDRESS,
            visit(
                "a",
                day(2, 9),
                summary="HV Smith",
                location="12 Acacia Avenue",
                postal_code="DE1 1AA",
            ),
        )
        assert hook.outcomes[-1].sync_now == {ADDRESS}
        cs = local.sync()
        assert local.items["a"].postal_code == "DE1 1AA" and [u.href for u in cs.upserts] == ["a"]

        assert not graph_notify.renewal_due(sub, NOW)
        assert graph_notify.renewal_due(sub, NOW + timedelta(days=1, hours=1))
        renewed = src.renew(sub, NOW + timedelta(days=4))
        assert renewed.expires == NOW + timedelta(days=4) and renewed.id == sub.id
        src.unsubscribe(renewed)
        src.unsubscribe(renewed)  # already gone is fine
        assert h.server.subscriptions == {}
    finally:
        hook.close()


def test_subscription_fails_loudly_when_the_endpoint_does_not_validate(h: GraphHarness) -> None:
    hook = Webhook(h.server, client_state="s")
    hook.url = hook.url.replace("https://", "https://localhost.invalid.")  # unreachable
    try:
        with pytest.raises(SourceError) as info:
            h.graph_source().subscribe(
                ADDRESS,
                notification_url=hook.url,
                client_state="s",
                expires=NOW + timedelta(days=1),
            )
        assert info.value.permanent and "validationToken" in str(info.value)
        with pytest.raises(SourceError, match="rejected"):
            h.graph_source().subscribe(
                ADDRESS,
                notification_url="https://x.example/n",
                client_state="s",
                expires=NOW + timedelta(days=30),
            )
    finally:
        hook.close()


def test_validation_response_echoes_the_token_as_plain_text() -> None:
    token = "Validation: Testing client application reachability <script>"
    answer = graph_notify.validation_response({"validationToken": token})
    assert answer == graph_notify.ValidationResponse(
        200, "text/plain; charset=utf-8", token.encode()
    )
    assert graph_notify.validation_response({}) is None
    bad = graph_notify.validation_response({"validationToken": ""})
    assert bad is not None and bad.status == 400


def test_notifications_with_wrong_client_state_or_unknown_subscription_are_dropped() -> None:
    subs = {"sub-1": "a@council.example", "sub-2": "b@council.example"}
    body = json.dumps(
        {
            "value": [
                {
                    "subscriptionId": "sub-1",
                    "clientState": "right",
                    "changeType": "updated",
                    "resource": "Users/x/Events/1",
                },
                {"subscriptionId": "sub-2", "clientState": "forged", "changeType": "updated"},
                {"subscriptionId": "sub-9", "clientState": "right", "changeType": "created"},
                {
                    "subscriptionId": "sub-2",
                    "clientState": "right",
                    "lifecycleEvent": "reauthorizationRequired",
                },
                {
                    "subscriptionId": "sub-2",
                    "clientState": "right",
                    "lifecycleEvent": "subscriptionRemoved",
                },
                "junk",
            ]
        }
    )
    out = graph_notify.handle_notifications(body, client_state="right", subscriptions=subs)
    assert out.sync_now == {"a@council.example", "b@council.example"}
    assert out.renew == {"sub-2"} and out.recreate == {"b@council.example"} and out.rejected == 3
    with pytest.raises(InputError):
        graph_notify.handle_notifications(b"not json", client_state="right", subscriptions=subs)
    with pytest.raises(InputError):
        graph_notify.handle_notifications(b"{}", client_state="right", subscriptions=subs)


def test_subscription_expiry_never_exceeds_graphs_limit() -> None:
    asked = graph_notify.subscription_expiry(NOW, lifetime=timedelta(days=30))
    assert asked - NOW < graph_notify.MAX_EVENT_SUBSCRIPTION
