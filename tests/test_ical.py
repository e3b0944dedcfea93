"""parse_ical: expansion semantics, time zones, tolerance (icalendar + recurring-ical-events)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from syncd.errors import InputError
from syncd.parse.ical import DEFAULT_LIMITS, Limits, parse_ical
from syncd.parse.timezones import resolve_tzid, zone_from_windows
from syncd.sources.base import Window

LONDON = ZoneInfo("Europe/London")
UTC = ZoneInfo("UTC")
OCT = Window(datetime(2025, 10, 1, tzinfo=UTC), datetime(2025, 11, 1, tzinfo=UTC))

GMT_VTZ = """BEGIN:VTIMEZONE
TZID:GMT Standard Time
BEGIN:STANDARD
DTSTART:16010101T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0000
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010101T010000
TZOFFSETFROM:+0000
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3
END:DAYLIGHT
END:VTIMEZONE
"""


def cal(*events: str, extra: str = "") -> str:
    body = "".join(f"BEGIN:VEVENT\n{e.strip()}\nEND:VEVENT\n" for e in events)
    return f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n{extra}{body}END:VCALENDAR\n"


def parse(text: str | bytes, window: Window = OCT, **kw: object):
    return parse_ical(text, window=window, tz=LONDON, **kw)  # type: ignore[arg-type]


def test_single_timed_event_fields_and_zone() -> None:
    r = parse(
        cal(
            """UID:a
DTSTART:20251014T090000Z
DTEND:20251014T100000Z
SUMMARY:Home visit
LOCATION:1 High St\\, Leeds LS1 4AB
DESCRIPTION:Call 0113 496 0000\\nback by 5
CATEGORIES:Visit,Lone working
CATEGORIES: Red """
        )
    )
    assert r.problems == []
    (o,) = r.occurrences
    assert o.start == datetime(2025, 10, 14, 10, 0, tzinfo=LONDON)
    assert o.start.tzinfo == LONDON
    assert o.end == datetime(2025, 10, 14, 11, 0, tzinfo=LONDON)
    assert o.location == "1 High St, Leeds LS1 4AB"
    assert o.description == "Call 0113 496 0000\nback by 5"
    assert o.categories == ("Visit", "Lone working", "Red")
    assert o.recurrence_id == "" and not o.cancelled


ORGANIZERS = [
    ("ORGANIZER:mailto:duty.desk@council.example", "duty.desk@council.example"),
    ('ORGANIZER;CN="Smith, Jo":MAILTO:Jo.Smith@Council.Example', "jo.smith@council.example"),
    ('ORGANIZER;CN=Jo Smith;SENT-BY="mailto:pa@x.example":Mailto:JO@X.EXAMPLE', "jo@x.example"),
    ("organizer;cn=Jo:mailto:jo@x.example ", "jo@x.example"),
    ("ORGANIZER;VALUE=DATE:20251014", ""),
    ("", ""),
]


@pytest.mark.parametrize(("line", "want"), ORGANIZERS)
def test_organizer_address_is_kept_lower_case_without_mailto(line: str, want: str) -> None:
    r = parse(cal(f"UID:o\nDTSTART:20251014T090000Z\n{line}"))
    assert r.problems == []
    assert [o.organizer for o in r.occurrences] == [want]


def test_organizer_of_an_override_is_its_own() -> None:
    r = parse(
        cal(
            "UID:s\nDTSTART:20251006T090000Z\nRRULE:FREQ=WEEKLY;COUNT=3\n"
            "ORGANIZER;CN=A:mailto:a@x.example",
            "UID:s\nRECURRENCE-ID:20251013T090000Z\nDTSTART:20251013T100000Z\n"
            "ORGANIZER;CN=B:mailto:B@x.example",
        )
    )
    assert [o.organizer for o in r.occurrences] == ["a@x.example", "b@x.example", "a@x.example"]


def test_missing_end_is_none_but_duration_gives_end() -> None:
    r = parse(
        cal(
            "UID:noend\nDTSTART;TZID=Europe/London:20251014T090000",
            "UID:dur\nDTSTART;TZID=Europe/London:20251014T090000\nDURATION:PT90M",
        )
    )
    by = {o.uid: o for o in r.occurrences}
    assert by["noend"].end is None
    assert by["dur"].end == datetime(2025, 10, 14, 10, 30, tzinfo=LONDON)


def test_all_day_events_are_dates() -> None:
    r = parse(cal("UID:ad\nDTSTART;VALUE=DATE:20251020\nDTEND;VALUE=DATE:20251021\nSUMMARY:Leave"))
    (o,) = r.occurrences
    assert o.start == date(2025, 10, 20) and o.end == date(2025, 10, 21)
    assert o.all_day


def test_window_is_end_exclusive_and_overlap_based() -> None:
    r = parse(
        cal(
            "UID:before\nDTSTART:20250930T220000Z\nDTEND:20251001T000000Z",
            "UID:straddle\nDTSTART:20250930T230000Z\nDTEND:20251001T010000Z",
            "UID:after\nDTSTART:20251101T000000Z\nDTEND:20251101T010000Z",
        )
    )
    assert [o.uid for o in r.occurrences] == ["straddle"]


def test_weekly_gmt_standard_time_stays_10_local_across_both_dst_changes() -> None:
    text = cal(
        """UID:w
DTSTART;TZID=GMT Standard Time:20250915T100000
DTEND;TZID=GMT Standard Time:20250915T110000
RRULE:FREQ=WEEKLY;BYDAY=MO""",
        extra=GMT_VTZ,
    )
    window = Window(datetime(2025, 10, 13, tzinfo=UTC), datetime(2026, 4, 14, tzinfo=UTC))
    occ = parse(text, window).occurrences
    assert len(occ) == 27
    assert all(o.start.hour == 10 and o.start.minute == 0 for o in occ)  # type: ignore[union-attr]
    utc_hours = {o.start.date(): o.start.astimezone(UTC).hour for o in occ}  # type: ignore[union-attr]
    assert utc_hours[date(2025, 10, 20)] == 9  # BST, before the last Sunday of October
    assert utc_hours[date(2025, 10, 27)] == 10  # GMT
    assert utc_hours[date(2026, 3, 23)] == 10
    assert utc_hours[date(2026, 3, 30)] == 9  # BST again


def test_exdate_override_and_cancelled_occurrence() -> None:
    text = cal(
        """UID:s
DTSTART;TZID=Europe/London:20251006T100000
DTEND;TZID=Europe/London:20251006T110000
SUMMARY:Weekly visit
LOCATION:Old address LS1 1AA
DESCRIPTION:base
RRULE:FREQ=WEEKLY;COUNT=4
EXDATE;TZID=Europe/London:20251013T100000""",
        """UID:s
RECURRENCE-ID;TZID=Europe/London:20251020T100000
DTSTART;TZID=Europe/London:20251020T140000
DTEND;TZID=Europe/London:20251020T150000
SUMMARY:Moved visit""",
        """UID:s
RECURRENCE-ID;TZID=Europe/London:20251027T100000
DTSTART;TZID=Europe/London:20251027T100000
DTEND;TZID=Europe/London:20251027T110000
SUMMARY:Weekly visit
STATUS:CANCELLED""",
    )
    occ = parse(text).occurrences
    assert [o.start.day for o in occ] == [6, 20, 27]  # type: ignore[union-attr]
    first, moved, cancelled = occ
    assert first.recurrence_id == "2025-10-06T10:00:00+01:00" and not first.cancelled
    # The override replaces its occurrence whole: no LOCATION or DESCRIPTION inherited.
    assert moved.summary == "Moved visit" and moved.location == "" and moved.description == ""
    assert moved.start == datetime(2025, 10, 20, 14, tzinfo=LONDON)
    assert moved.recurrence_id == "2025-10-20T10:00:00+01:00"
    assert cancelled.cancelled
    assert cancelled.recurrence_id == "2025-10-27T10:00:00+00:00"


def test_occurrence_key_survives_being_overridden() -> None:
    base = """UID:k
DTSTART;TZID=Europe/London:20251006T100000
DTEND;TZID=Europe/London:20251006T110000
RRULE:FREQ=WEEKLY;COUNT=2"""
    plain = parse(cal(base)).occurrences
    override = (
        "UID:k\nRECURRENCE-ID:20251013T090000Z\nDTSTART:20251013T130000Z\nDTEND:20251013T140000Z"
    )
    moved = parse(cal(base, override)).occurrences
    assert [o.key for o in plain] == [o.key for o in moved]


def test_floating_time_is_taken_in_staff_zone() -> None:
    (o,) = parse(cal("UID:f\nDTSTART:20251014T090000\nDTEND:20251014T100000")).occurrences
    assert o.start == datetime(2025, 10, 14, 9, tzinfo=LONDON)


def test_display_name_without_vtimezone() -> None:
    tzid = "(UTC+00:00) Dublin, Edinburgh, Lisbon, London"
    (o,) = parse(cal(f'UID:d\nDTSTART;TZID="{tzid}":20251014T090000')).occurrences
    assert o.start == datetime(2025, 10, 14, 9, tzinfo=LONDON)
    assert zone_from_windows(tzid) == LONDON
    assert zone_from_windows("GMT Standard Time") == LONDON
    assert zone_from_windows("W. Europe Standard Time") == ZoneInfo("Europe/Berlin")
    assert zone_from_windows("Customized Time Zone") is None
    assert resolve_tzid("/freeassociation.sourceforge.net/Europe/London") == LONDON


def _custom(offset: str) -> str:
    return (
        "BEGIN:VTIMEZONE\nTZID:Customized Time Zone\nBEGIN:STANDARD\nDTSTART:16010101T000000\n"
        f"TZOFFSETFROM:{offset}\nTZOFFSETTO:{offset}\nEND:STANDARD\nEND:VTIMEZONE\n"
    )


def test_custom_zone_is_per_calendar_not_process_wide() -> None:
    ev = "UID:c\nDTSTART;TZID=Customized Time Zone:20251014T090000\nDTEND;TZID=Customized Time Zone:20251014T100000"
    a = parse(cal(ev, extra=_custom("-0500"))).occurrences[0]
    b = parse(cal(ev, extra=_custom("+0300"))).occurrences[0]
    assert a.start.astimezone(UTC).hour == 14  # type: ignore[union-attr]
    assert b.start.astimezone(UTC).hour == 6  # type: ignore[union-attr]


def test_unknown_zone_is_read_locally_and_reported() -> None:
    r = parse(cal("UID:u\nDTSTART;TZID=Atlantis Standard Time:20251014T090000"))
    assert r.occurrences[0].start == datetime(2025, 10, 14, 9, tzinfo=LONDON)
    assert any("unknown time zone" in p.message for p in r.problems)


def test_x_wr_timezone_calendar() -> None:
    text = cal(
        "UID:x\nDTSTART:20251014T080000Z\nDTEND:20251014T090000Z",
        extra="X-WR-TIMEZONE:Europe/Berlin\n",
    )
    (o,) = parse(text).occurrences
    assert o.start == datetime(2025, 10, 14, 9, tzinfo=LONDON)


def test_broken_entries_become_problems_and_the_rest_still_parses() -> None:
    r = parse(
        cal(
            "UID:badrule\nSUMMARY:Bad rule\nDTSTART:20251014T090000Z\nRRULE:FREQ=WEEKLY;BYDAY=MO, TU",
            "UID:badstart\nSUMMARY:Bad start\nDTSTART:2025-10-14",
            "UID:nostart\nSUMMARY:No start",
            "UID:good\nSUMMARY:Good\nDTSTART:20251014T090000Z\nDTEND:20251014T100000Z",
        )
    )
    assert [o.uid for o in r.occurrences] == ["good"]
    assert {p.uid for p in r.problems} == {"badrule", "badstart", "nostart"}
    assert {p.summary for p in r.problems} == {"Bad rule", "Bad start", "No start"}


def test_missing_uid_gets_a_stable_one() -> None:
    text = cal("SUMMARY:x\nDTSTART:20251014T090000Z")
    assert parse(text).occurrences[0].uid == parse(text).occurrences[0].uid != ""


@pytest.mark.parametrize(
    "data", [b"", b"hello", "<html><body>Sign in</body></html>", b"\x89PNG\r\n\x1a\n\x00\x00"]
)
def test_not_icalendar_raises_input_error(data: str | bytes) -> None:
    with pytest.raises(InputError, match="not an iCalendar file"):
        parse(data)


def test_encodings() -> None:
    text = cal("UID:e\nDTSTART:20251014T090000Z\nSUMMARY:Visite chez Zoë – café")
    for raw in (
        text.encode("utf-8"),
        b"\xef\xbb\xbf" + text.encode("utf-8"),
        text.encode("utf-16"),
        text.encode("utf-16-le"),
        text.encode("cp1252"),
    ):
        (o,) = parse(raw).occurrences
        assert o.summary == "Visite chez Zoë – café"
    latin = text.replace("–", "-").encode("latin-1").replace(b"caf\xe9", b"caf\xe9\x81")
    assert parse(latin).occurrences[0].summary.startswith("Visite chez Zo")


def test_long_text_is_truncated_with_a_problem() -> None:
    r = parse(
        cal("UID:l\nSUMMARY:s\nDTSTART:20251014T090000Z\nDESCRIPTION:" + "x" * 500),
        limits=Limits(max_property_chars=100),
    )
    assert len(r.occurrences[0].description) == 100
    assert [p.uid for p in r.problems] == ["l"]


def test_series_cap_keeps_the_first_occurrences() -> None:
    r = parse(
        cal("UID:d\nSUMMARY:s\nDTSTART:20251001T090000Z\nRRULE:FREQ=DAILY"),
        limits=Limits(max_occurrences_per_series=5),
    )
    assert [o.start.day for o in r.occurrences] == [1, 2, 3, 4, 5]  # type: ignore[union-attr]
    assert [p.uid for p in r.problems] == ["d"]


def test_total_occurrence_cap() -> None:
    events = [f"UID:{i}\nDTSTART:20251014T090000Z" for i in range(10)]
    r = parse(cal(*events), limits=Limits(max_occurrences=4))
    assert len(r.occurrences) == 4
    assert any("more than 4" in p.message for p in r.problems)


def test_ended_and_future_series() -> None:
    r = parse(
        cal(
            "UID:old\nDTSTART:20200106T090000Z\nRRULE:FREQ=WEEKLY;UNTIL=20200601T000000Z",
            "UID:long\nDTSTART:20100104T090000Z\nDTEND:20100104T100000Z\nRRULE:FREQ=WEEKLY;BYDAY=MO",
            "UID:allday\nDTSTART;VALUE=DATE:20250101\nRRULE:FREQ=MONTHLY;BYMONTHDAY=-1",
        )
    )
    assert [o.uid for o in r.occurrences if o.uid == "old"] == []
    assert len([o for o in r.occurrences if o.uid == "long"]) == 4
    assert [o.start for o in r.occurrences if o.uid == "allday"] == [date(2025, 10, 31)]
    assert r.problems == []


def test_guard_does_not_cut_a_daily_series_started_years_ago() -> None:
    start = datetime(2001, 1, 1, 9, tzinfo=UTC)
    r = parse(cal(f"UID:d\nDTSTART:{start:%Y%m%dT%H%M%SZ}\nRRULE:FREQ=DAILY"))
    assert len(r.occurrences) == 31 and r.problems == []
    assert r.occurrences[0].start - start > timedelta(days=8000)  # type: ignore[operator]


# --- the fast lane (syncd.parse.fast) must agree with the full icalendar path ----------------

FAST_CASES = [
    "UID:a\nDTSTART:20251014T090000Z\nDTEND:20251014T100000Z\nSUMMARY:HV\\, one\\nline\\;x",
    "UID:b\nDTSTART;TZID=GMT Standard Time:20251026T013000\nDTEND;TZID=GMT Standard Time:20251026T023000",
    'UID:c\nDTSTART;TZID="W. Europe Standard Time":20251014T090000\nDURATION:PT45M',
    "UID:d\nDTSTART;TZID=Europe/London:20251014T090000",
    "UID:e\nDTSTART;VALUE=DATE:20251020\nSUMMARY:All day",
    "UID:f\nDTSTART;VALUE=DATE:20251020\nDTEND;VALUE=DATE:20251023",
    "UID:g\nDTSTART:20251014T090000\nDTEND:20251014T080000\nSTATUS:cancelled ",
    "UID:h\nDTSTART:20251014T090000Z\nCATEGORIES:Home Visit,Red\nCATEGORIES:a\\,b, c ,\nLOCATION:1 High St",
    "UID:i\nDTSTART;VALUE=DATE:20251020\nDURATION:P2D",
    "UID:j\nDTSTART;TZID=(UTC+00:00) Dublin, Edinburgh, Lisbon, London:20251014T090000",
    "UID:k\nDTSTART:20250930T230000Z\nDTEND:20251001T000000Z",
    "UID:l\nDTSTART:20251101T000000Z",
    'UID:m\nDTSTART:20251031T235959Z\nDESCRIPTION;ALTREP="cid:x:y":text: with colon',
    "UID:n\nDTSTART;TZID=Customized Time Zone:20251014T090000",
    "UID:o\nDTSTART;TZID=Europe/London:20251014\nSUMMARY:date with zone",
    "UID:p\nDTSTART:20251014T090000Z\nBEGIN:VALARM\nTRIGGER:-PT15M\nACTION:DISPLAY\nEND:VALARM",
    "uid:q\ndtstart:20251014T090000Z\nsummary:lower-case names",
    'UID:r\nDTSTART:20251014T090000Z\nX-MS-OLK-SENDER;CN="A; B":mailto:a@example.org',
    "UID:s\nDTSTART:20251014T090000Z\nDear Team,\nSUMMARY:unfolded garbage",
    "UID:t\nDTSTART:20251014T090000Z\nSUMMARY:a\nSUMMARY:b",
    "UID:u\nDTSTART:20251014T090000Z\nDTEND;VALUE=DATE:20251015",
    "UID:v\nDTSTART:20251014T090000Z\nDESCRIPTION:" + "y" * 300,
    *(f"UID:w{n}\nDTSTART:20251014T090000Z\n{line}" for n, (line, _) in enumerate(ORGANIZERS)),
    'UID:x\nDTSTART:20251014T090000Z\nORGANIZER;CN="A: B":MAILTO:A\\,B@x.example',
    "UID:y\nDTSTART:20251014T090000Z\nORGANIZER:mailto:a@x.example\nORGANIZER:mailto:b@x.example",
    "UID:z\nDTSTART:20251014T090000Z\nORGANIZER;VALUE=URI:MAILTO:Q@x.example",
]


def _differential(text: str, window: Window = OCT, limits: Limits = DEFAULT_LIMITS) -> None:
    from syncd.parse.full import parse_full
    from syncd.parse.ical import ParseResult

    fast = parse_ical(text, window=window, tz=LONDON, limits=limits)
    full = ParseResult()
    parse_full(text, window, LONDON, limits, full)
    full.occurrences.sort(
        key=lambda o: (
            o.start
            if isinstance(o.start, datetime)
            else datetime.combine(o.start, datetime.min.time(), LONDON)
        )
    )
    assert sorted(map(repr, fast.occurrences)) == sorted(map(repr, full.occurrences))
    assert sorted(map(repr, fast.problems)) == sorted(map(repr, full.problems))


@pytest.mark.parametrize("event", FAST_CASES)
def test_fast_lane_matches_full_path(event: str) -> None:
    _differential(
        cal(event, extra=GMT_VTZ + _custom("-0500")), limits=Limits(max_property_chars=100)
    )


def test_fast_lane_matches_full_path_on_mixed_calendars() -> None:
    import random

    from bench.parse_check import HEAD, TAIL, WINDOW, calendars

    for cal_events in calendars(600, seed=7):
        _differential(HEAD + "".join(cal_events) + TAIL, WINDOW)
        for ev in cal_events[:3]:
            _differential(HEAD + ev + TAIL, WINDOW)
    rng = random.Random(3)
    events = [rng.choice(FAST_CASES) for _ in range(40)]
    _differential(cal(*events, extra=GMT_VTZ))  # shared UIDs: all go the full path


def test_fast_lane_uses_the_limits() -> None:
    events = [f"UID:{i}\nDTSTART:20251014T090000Z" for i in range(10)]
    _differential(cal(*events), limits=Limits(max_occurrences=4))
