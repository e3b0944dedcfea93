"""EwsSource against the local fake EWS server, through the real exchangelib client."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from syncd.domain.model import Occurrence, RawItem
from syncd.errors import AuthError, SourceError
from syncd.sources import load
from syncd.sources._common import html_to_text
from syncd.sources.base import ChangeSet, Source, Window
from syncd.sources.ews import EwsSource
from tests.harness import EventSpec
from tests.harness.ews import EwsHarness

LONDON = ZoneInfo("Europe/London")
WINDOW = Window(datetime(2025, 3, 10, tzinfo=LONDON), datetime(2025, 4, 7, tzinfo=LONDON))
D1 = date(2025, 3, 11)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LONDON)


def visit(uid: str, start: datetime, **kw: object) -> EventSpec:
    kw.setdefault("summary", f"HV {uid}")
    return EventSpec(uid=uid, start=start, end=start + timedelta(hours=1), **kw)  # type: ignore[arg-type]


@pytest.fixture
def ews() -> Iterator[EwsHarness]:
    h = EwsHarness()
    yield h
    h.close()


class Local:
    """The caller's copy of one calendar, kept the way the store keeps it."""

    def __init__(self, source: Source, locator: str, window: Window = WINDOW):
        self.source, self.locator, self.window = source, locator, window
        self.items: dict[str, RawItem] = {}
        self.state: str | None = None

    def sync(self) -> ChangeSet:
        known = {h: i.etag for h, i in self.items.items()}
        cs = self.source.sync(self.locator, self.state, known, self.window)
        for href in cs.deletes:
            self.items.pop(href, None)
        for item in cs.upserts:
            self.items[item.href] = item
        self.state = cs.state
        return cs

    def occurrences(self) -> list[Occurrence]:
        return sorted(
            (Occurrence.from_json(i.data) for i in self.items.values()),
            key=lambda o: (o.uid, str(o.start)),
        )


# --- configuration and laziness ------------------------------------------------------------


def test_registered_kind_and_constructor_does_no_io(ews: EwsHarness) -> None:
    assert load("ews") is EwsSource
    src = ews.source()
    src.close()
    assert ews.fake.calls == []


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({}, "autodiscover"),
        ({"service_endpoint": "http://mail.example.org/EWS/Exchange.asmx"}, "https"),
        ({"service_endpoint": "ftp://x/EWS"}, "https"),
        ({"autodiscover": True, "auth_type": "oauth"}, "client_id"),
        ({"autodiscover": True, "username": "svc"}, "password"),
    ],
)
def test_invalid_options_are_rejected_with_the_key_named(
    fields: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ValidationError, match=complaint):
        EwsSource.Options.model_validate({"username": "svc", **fields})


# --- sync state and paging -----------------------------------------------------------------


def test_sync_folder_items_pages_and_state_continues(ews: EwsHarness) -> None:
    loc = ews.make_calendar("jsmith")
    for i in range(5):
        ews.put(loc, visit(f"v{i}", at(D1, 8 + i)))
    local = Local(ews.source(sync_page_size=2), loc)

    cs = local.sync()
    # 5 creates at 2 per page: 3 SyncFolderItems (IncludesLastItemInRange false, false, true).
    assert ews.fake.calls.count("SyncFolderItems") == 3
    assert cs.full and len(cs.upserts) == 5
    assert cs.requests == len(ews.fake.calls)

    ews.fake.calls.clear()
    cs = local.sync()
    assert ews.fake.calls == ["SyncFolderItems"]  # the stored state carried on: no changes
    assert (cs.full, cs.upserts, cs.deletes, cs.requests) == (False, [], [], 1)

    for i in range(3):
        ews.put(loc, visit(f"v{i}", at(D1, 8 + i), location=f"Derby DE1 {i}AA"))
    ews.fake.calls.clear()
    cs = local.sync()
    assert ews.fake.calls.count("SyncFolderItems") == 2  # 3 updates: 2 pages
    assert {Occurrence.from_json(i.data).uid for i in cs.upserts} == {"v0", "v1", "v2"}
    assert cs.requests == len(ews.fake.calls)


def test_calendar_view_pages_by_moving_the_start(ews: EwsHarness) -> None:
    loc = ews.make_calendar("jsmith")
    for i in range(5):
        ews.put(loc, visit(f"v{i}", at(D1 + timedelta(days=i), 10)))
    local = Local(ews.source(view_page_size=2), loc)
    cs = local.sync()
    assert sorted(o.uid for o in local.occurrences()) == [f"v{i}" for i in range(5)]
    assert len(cs.upserts) == 5
    starts = [start for start, _end, _limit in ews.fake.view_requests]
    # Each next page starts at the last start seen (an entry overlapping it comes again).
    assert len(starts) == 5 and starts == sorted(set(starts))
    assert all(limit == 2 for _s, _e, limit in ews.fake.view_requests)


def test_calendar_view_page_full_of_one_start_is_widened_not_looped(ews: EwsHarness) -> None:
    loc = ews.make_calendar("jsmith")
    for i in range(3):
        ews.put(loc, visit(f"same{i}", at(D1, 10)))
    ews.put(loc, visit("later", at(D1, 15)))
    local = Local(ews.source(view_page_size=1), loc)
    local.sync()
    assert sorted(o.uid for o in local.occurrences()) == ["later", "same0", "same1", "same2"]


# --- changes --------------------------------------------------------------------------------


def test_creations_updates_and_deletions(ews: EwsHarness) -> None:
    loc = ews.make_calendar("jsmith")
    ews.put(loc, visit("keep", at(D1, 9)))
    ews.put(loc, visit("edit", at(D1, 10)))
    ews.put(loc, visit("gone", at(D1, 11)))
    local = Local(ews.source(), loc)
    local.sync()
    by_uid = {Occurrence.from_json(i.data).uid: i for i in local.items.values()}

    ews.put(loc, visit("new", at(D1, 14)))
    ews.put(loc, visit("edit", at(D1, 15), location="4 Mill Lane, Matlock DE4 3LT"))
    ews.delete(loc, "gone")
    cs = local.sync()

    assert cs.full
    assert sorted(Occurrence.from_json(i.data).uid for i in cs.upserts) == ["edit", "new"]
    assert cs.deletes == [by_uid["gone"].href]
    edited = next(o for o in local.occurrences() if o.uid == "edit")
    assert edited.location == "4 Mill Lane, Matlock DE4 3LT"
    assert edited.start == at(D1, 15)
    assert local.items[by_uid["edit"].href].etag != by_uid["edit"].etag


def test_recurring_series_with_an_exception_and_a_removed_occurrence(ews: EwsHarness) -> None:
    loc = ews.make_calendar("jsmith")
    first = at(date(2025, 3, 12), 13)
    week = timedelta(days=7)
    moved = EventSpec(
        uid="series", summary="HV Brown (moved)", start=first + week + timedelta(hours=2),
        end=first + week + timedelta(hours=3), location="7 Park Road, Belper DE56 1AB",
    )  # fmt: skip
    series = visit(
        "series", first, summary="HV Brown", rrule="FREQ=WEEKLY;COUNT=4",
        overrides={first + week: moved}, tzid="GMT Standard Time",
    )  # fmt: skip
    ews.put(loc, series)
    local = Local(ews.source(), loc)
    local.sync()

    occ = local.occurrences()
    assert [o.start for o in occ] == [first, first + week + timedelta(hours=2),
                                      first + 2 * week, first + 3 * week]  # fmt: skip
    # Original starts identify each occurrence; the 4th is after the clocks change (BST).
    assert [o.recurrence_id for o in occ] == [
        "2025-03-12T13:00:00+00:00", "2025-03-19T13:00:00+00:00",
        "2025-03-26T13:00:00+00:00", "2025-04-02T13:00:00+01:00",
    ]  # fmt: skip
    assert occ[1].summary == "HV Brown (moved)" and occ[1].location.endswith("DE56 1AB")
    assert occ[3].start.utcoffset() == timedelta(hours=1)  # type: ignore[union-attr]
    assert len(set(local.items)) == 4

    # Deleting one occurrence (an EXDATE in Outlook terms) removes just that one.
    ews.put(loc, visit(
        "series", first, summary="HV Brown", rrule="FREQ=WEEKLY;COUNT=4",
        overrides={first + week: moved}, exdates=(first + 2 * week,), tzid="GMT Standard Time",
    ))  # fmt: skip
    third = next(h for h, i in local.items.items() if "2025-03-26" in i.href)
    cs = local.sync()
    assert cs.deletes == [third]
    # Every occurrence's etag carries the series' ChangeKey, so all are re-sent: correct, cheap.
    assert len(local.items) == 3


def test_fields_are_mapped(ews: EwsHarness) -> None:
    loc = ews.make_calendar("jsmith")
    ews.put(loc, visit(
        "hv", at(D1, 9, 30), summary="HV Smith family", location="12 Acacia Avenue, Derby DE1 1AA",
        description="Tel: 01332 123456\n\nReturn: office <by 4pm> & \"home\" after",
        categories=("Home visit", "Lone working"), tzid="GMT Standard Time",
        organizer="Duty.Desk@example.org",
    ))  # fmt: skip
    ews.put(loc, visit("off", at(D1, 12), cancelled=True))
    ews.put(loc, EventSpec(uid="leave", summary="Annual leave", start=date(2025, 3, 13),
                           end=date(2025, 3, 15)))  # fmt: skip
    local = Local(ews.source(), loc)
    local.sync()
    occ = {o.uid: o for o in local.occurrences()}

    hv = occ["hv"]
    assert hv.summary == "HV Smith family"
    assert hv.location == "12 Acacia Avenue, Derby DE1 1AA"
    assert hv.description == 'Tel: 01332 123456\n\nReturn: office <by 4pm> & "home" after'
    assert hv.categories == ("Home visit", "Lone working")
    assert isinstance(hv.start, datetime) and hv.start == at(D1, 9, 30)
    assert hv.end == at(D1, 10, 30)
    assert not hv.cancelled and hv.recurrence_id == ""
    assert hv.organizer == "duty.desk@example.org"  # t:Organizer/t:Mailbox/t:EmailAddress
    assert occ["off"].cancelled
    assert occ["off"].organizer == "jsmith@example.org"  # Exchange names the owner
    leave = occ["leave"]
    assert leave.all_day and leave.start == date(2025, 3, 13)
    assert leave.end == date(2025, 3, 15)  # exclusive, as iCalendar's DTEND
    assert all(i.kind == "occurrence" for i in local.items.values())


def test_delegate_access_sends_no_impersonation_header(ews: EwsHarness) -> None:
    loc = ews.make_calendar("jsmith")
    ews.put(loc, visit("v", at(D1, 9)))
    local = Local(ews.source(access_type="delegate"), loc)
    assert len(local.sync().upserts) == 1
    assert ews.fake.impersonated == []
    impersonating = Local(ews.source(), loc)
    impersonating.sync()
    assert set(ews.fake.impersonated) == {loc}


def test_one_source_syncs_several_mailboxes_at_once(ews: EwsHarness) -> None:
    from concurrent.futures import ThreadPoolExecutor

    locs = [ews.make_calendar(f"worker{i}") for i in range(6)]
    for n, loc in enumerate(locs):
        for k in range(n + 1):
            ews.put(loc, visit(f"{loc}-{k}", at(D1, 8 + k)))
    src = ews.source(max_connections=3)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda loc: src.sync(loc, None, {}, WINDOW), locs))
    for n, (loc, cs) in enumerate(zip(locs, results, strict=True)):
        assert sorted(Occurrence.from_json(i.data).uid for i in cs.upserts) == [
            f"{loc}-{k}" for k in range(n + 1)
        ]


def test_window_move_rereads_even_when_nothing_changed(ews: EwsHarness) -> None:
    loc = ews.make_calendar("jsmith")
    ews.put(loc, visit("early", at(D1, 9)))
    ews.put(loc, visit("late", at(date(2025, 4, 10), 9)))
    local = Local(ews.source(), loc)
    local.sync()
    early_href = next(iter(local.items))
    local.window = Window(at(date(2025, 3, 20), 0), at(date(2025, 4, 17), 0))
    cs = local.sync()
    assert cs.full
    assert cs.deletes == [early_href]
    assert [o.uid for o in local.occurrences()] == ["late"]


# --- failures -------------------------------------------------------------------------------


def test_expired_sync_state_starts_again(ews: EwsHarness) -> None:
    loc = ews.make_calendar("jsmith")
    for uid in ("a", "b"):
        ews.put(loc, visit(uid, at(D1, 10)))
    local = Local(ews.source(), loc)
    local.sync()
    gone = next(h for h, i in local.items.items() if Occurrence.from_json(i.data).uid == "b")
    ews.delete(loc, "b")
    ews.fake.expire_sync_states()
    ews.fake.calls.clear()
    cs = local.sync()
    assert ews.fake.calls[:2] == ["SyncFolderItems", "SyncFolderItems"]  # refused, then fresh
    assert cs.full and cs.deletes == [gone] and cs.upserts == []
    assert local.sync().requests == 1


def test_expired_state_with_everything_deleted_still_reports_the_deletes(ews: EwsHarness) -> None:
    loc = ews.make_calendar("jsmith")
    ews.put(loc, visit("a", at(D1, 10)))
    local = Local(ews.source(), loc)
    local.sync()
    ews.delete(loc, "a")
    ews.fake.expire_sync_states()
    cs = local.sync()  # a fresh SyncFolderItems of an empty calendar reports no change at all
    assert cs.full and len(cs.deletes) == 1 and local.items == {}


@pytest.mark.parametrize("state", ["not json", '{"v": 99}', '{"v": 1, "sync": "x"}'])
def test_damaged_state_means_a_fresh_full_sync(ews: EwsHarness, state: str) -> None:
    loc = ews.make_calendar("jsmith")
    ews.put(loc, visit("a", at(D1, 10)))
    cs = ews.source().sync(loc, state, {"stale-href": "x"}, WINDOW)
    assert cs.full and cs.deletes == ["stale-href"] and len(cs.upserts) == 1


def test_server_busy_is_raised_with_the_requested_backoff_without_sleeping(
    ews: EwsHarness,
) -> None:
    loc = ews.make_calendar("jsmith")
    ews.put(loc, visit("a", at(D1, 10)))
    local = Local(ews.source(), loc)
    local.sync()
    ews.fake.fail_next("busy", operation="SyncFolderItems", back_off_ms=297_749)
    began = time.monotonic()
    with pytest.raises(SourceError) as info:
        local.sync()
    assert time.monotonic() - began < 5  # FailFast: no sleep inside exchangelib
    assert not isinstance(info.value, AuthError)
    assert info.value.retry_after == pytest.approx(297.749)
    assert not info.value.permanent
    assert local.sync().requests == 1  # the stored state still works afterwards


def test_wrong_password_is_an_auth_error_with_a_clear_message(ews: EwsHarness) -> None:
    loc = ews.make_calendar("jsmith")
    ews.break_auth()
    with pytest.raises(AuthError) as info:
        ews.source().sync(loc, None, {}, WINDOW)
    assert info.value.permanent
    assert "credentials" in str(info.value)
    assert loc not in str(info.value) and info.value.__cause__ is None


def test_impersonation_denied_is_an_auth_error(ews: EwsHarness) -> None:
    loc = ews.fake.add_mailbox("other@example.org", impersonation=False)
    with pytest.raises(AuthError, match="impersonate"):
        ews.source().sync(loc, None, {}, WINDOW)


def test_delegate_without_calendar_permission_is_an_auth_error(ews: EwsHarness) -> None:
    loc = ews.fake.add_mailbox("other@example.org", delegate=False)
    with pytest.raises(AuthError, match="delegate"):
        ews.source(access_type="delegate").sync(loc, None, {}, WINDOW)


def test_unreachable_server_is_a_transient_source_error(ews: EwsHarness) -> None:
    loc = ews.make_calendar("jsmith")
    src = ews.source()
    ews.fake.stop()
    with pytest.raises(SourceError) as info:
        src.sync(loc, None, {}, WINDOW)
    assert type(info.value) is SourceError and not info.value.permanent
    assert "reach" in str(info.value)


def test_close_then_sync_again_reconnects(ews: EwsHarness) -> None:
    loc = ews.make_calendar("jsmith")
    ews.put(loc, visit("a", at(D1, 10)))
    src = ews.source()
    first = src.sync(loc, None, {}, WINDOW)
    src.close()
    src.close()
    again = src.sync(loc, first.state, {i.href: i.etag for i in first.upserts}, WINDOW)
    assert again.requests == 1 and again.upserts == []


def test_unknown_mailbox_is_a_permanent_source_error(ews: EwsHarness) -> None:
    with pytest.raises(SourceError) as info:
        ews.source().sync("nobody@example.org", None, {}, WINDOW)
    assert info.value.permanent and not isinstance(info.value, AuthError)
    assert "nobody" not in str(info.value)


@pytest.mark.parametrize(
    ("kind", "operation"),
    [
        ("malformed", "SyncFolderItems"),
        ("malformed", "FindItem"),
        ("malformed", "GetItem"),
        ("html", "SyncFolderItems"),
        ("unexpected", "FindItem"),
    ],
)
def test_malformed_responses_become_source_errors(
    ews: EwsHarness, kind: str, operation: str
) -> None:
    loc = ews.make_calendar("jsmith")
    ews.put(loc, visit("a", at(D1, 10), location="12 Acacia Avenue, Derby DE1 1AA"))
    ews.fake.fail_next(kind, operation=operation)
    with pytest.raises(SourceError) as info:
        ews.source().sync(loc, None, {}, WINDOW)
    err = info.value
    assert type(err) is SourceError and not err.permanent
    assert err.__cause__ is None and err.__suppress_context__
    for personal in (loc, "jsmith", "Acacia"):
        assert personal not in str(err)


# --- one unreadable entry -------------------------------------------------------------------


def test_a_corrupt_item_becomes_one_problem_entry_and_the_rest_still_sync(
    ews: EwsHarness,
) -> None:
    loc = ews.make_calendar("jsmith")
    ews.put(loc, visit("good", at(D1, 9), location="Derby DE1 1AA"))
    ews.put(loc, visit("bad", at(D1, 11), summary="HV Smith family", location="Derby DE1 1AA"))
    ews.put(loc, visit("weekly", at(D1, 14), rrule="FREQ=WEEKLY;COUNT=2"))
    ews.fake.corrupt(loc, "bad")
    local = Local(ews.source(), loc)
    cs = local.sync()

    problems = [i for i in local.items.values() if i.kind == "problem"]
    assert len(problems) == 1 and len(local.items) == 4
    bad = json.loads(problems[0].data)
    assert bad["summary"] == "HV Smith family"  # from CalendarView, so the monitor knows which
    assert "ErrorCorruptData" in bad["message"]
    assert "Smith" not in bad["message"] and "DE1" not in bad["message"]
    good = sorted(
        Occurrence.from_json(i.data).uid for i in local.items.values() if i.kind == "occurrence"
    )
    assert good == ["good", "weekly", "weekly"]
    assert local.sync().upserts == []  # a stable etag: not re-sent every cycle

    ews.fake.corrupt(loc, "bad", False)
    ews.put(loc, visit("bad", at(D1, 11), summary="HV Smith family", location="Derby DE1 1AA"))
    cs = local.sync()
    # The same ItemId: the readable entry replaces the problem one in place.
    assert cs.deletes == [] and [u.href for u in cs.upserts] == [problems[0].href]
    assert all(i.kind == "occurrence" for i in local.items.values())
    assert "bad" in {Occurrence.from_json(i.data).uid for i in local.items.values()}


def test_an_item_with_an_unparseable_start_becomes_a_problem_entry(ews: EwsHarness) -> None:
    loc = ews.make_calendar("jsmith")
    ews.put(loc, visit("a", at(D1, 10), location="12 Acacia Avenue, Derby DE1 1AA"))
    ews.fake.fail_next("garbage-item", operation="GetItem")
    cs = ews.source().sync(loc, None, {}, WINDOW)
    assert [i.kind for i in cs.upserts] == ["problem"]
    message = json.loads(cs.upserts[0].data)["message"]
    assert "start" in message and "Acacia" not in message


def test_no_personal_data_in_logs_at_info_or_above(
    ews: EwsHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    loc = ews.make_calendar("jsmith")
    ews.put(
        loc,
        visit(
            "a",
            at(D1, 10),
            summary="HV Smith",
            location="Derby DE1 1AA",
            organizer="pat.booker@example.org",
        ),
    )
    local = Local(ews.source(), loc)
    local.sync()
    ews.fake.expire_sync_states()
    local.sync()
    ews.fake.fail_next("html")
    with pytest.raises(SourceError):
        local.sync()
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert loud  # the expired state is reported
    for message in loud:
        for personal in ("jsmith", "Smith", "DE1 1AA", "pat.booker"):
            assert personal not in message


def test_an_organizer_without_an_smtp_address_is_left_empty() -> None:
    from exchangelib import Mailbox

    from syncd.sources.ews import mapping as ews_module

    # RoutingType EX: Exchange hands back the X.500 legacyExchangeDN, which is no address.
    legacy = Mailbox(
        name="Jo Smith",
        email_address="/O=EXCHANGELABS/OU=EXCHANGE ADMINISTRATIVE GROUP/CN=RECIPIENTS/CN=JO",
        routing_type="EX",
    )
    assert ews_module.organizer(legacy) == ""
    assert ews_module.organizer(None) == ""
    smtp = Mailbox(name="Jo", email_address="Jo.Smith@Example.org", routing_type="SMTP")
    assert ews_module.organizer(smtp) == "jo.smith@example.org"


# --- HTML bodies ------------------------------------------------------------------------------


def test_outlook_html_body_becomes_text_with_line_breaks() -> None:
    body = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
        "<style><!-- p {margin:0} --></style><title>x</title></head>\r\n<body>"
        '<div class="WordSection1"><p class="MsoNormal">Tel:&nbsp;01332 123456</p>\r\n'
        "<p>Address: 4 Mill&nbsp;Lane,<br>Matlock DE4 3LT</p><p>&nbsp;</p>"
        "<ul><li>Return: office &amp; then home</li></ul><script>alert(1)</script>"
        "</div></body></html>"
    )
    assert html_to_text(body) == (
        "Tel: 01332 123456\nAddress: 4 Mill Lane,\nMatlock DE4 3LT\n\nReturn: office & then home"
    )


def test_all_day_window_bounds_are_utc_in_the_calendar_view(ews: EwsHarness) -> None:
    loc = ews.make_calendar("jsmith")
    Local(ews.source(), loc).sync()
    start, end, _ = ews.fake.view_requests[0]
    assert datetime.fromisoformat(start.replace("Z", "+00:00")) == WINDOW.start.astimezone(UTC)
    assert datetime.fromisoformat(end.replace("Z", "+00:00")) == WINDOW.end.astimezone(UTC)


def test_the_documented_config_snippet_is_valid() -> None:
    import re
    import tomllib
    from pathlib import Path

    from syncd.config import parse_config
    from syncd.sources.ews import EwsOptions

    doc = (Path(__file__).parent.parent / "docs" / "exchange-server.md").read_text()
    snippet = re.search(r"```toml\n(.*?)```", doc, re.S)
    assert snippet is not None
    cfg = parse_config(tomllib.loads(snippet.group(1)))
    options = cfg.source_options(0)
    assert isinstance(options, EwsOptions) and options.password is not None
    assert options.password.credential == "ews-password"
