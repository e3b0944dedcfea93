"""The fast lane's series expansion (syncd.parse.series) equals the full icalendar path.

Generated series start near the clock changes (Europe/London, Outlook's "GMT Standard
Time" with its VTIMEZONE, New York), timed and all-day, with random FREQ/INTERVAL/COUNT/
UNTIL/BYDAY/BYMONTHDAY/EXDATE, windows that cut them at odd instants, and small limits.
Every case must give the very same Occurrence list (fields, order, recurrence ids) and
the same problems as ``parse_full`` (icalendar + recurring-ical-events) on the same text.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from syncd.errors import InputError
from syncd.parse.fast import scan
from syncd.parse.full import parse_full
from syncd.parse.ical import DEFAULT_LIMITS, Limits, ParseResult, parse_ical, sort_key
from syncd.parse.lane import expand_simple, simple_span
from syncd.sources.base import Window
from tests.test_ical import GMT_VTZ

LONDON = ZoneInfo("Europe/London")
UTC = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")

# Outlook's own definition of "GMT Standard Time", shared with the full-path tests.

# Clock changes: London (last Sundays of March/October) and New York (Mar 8, Nov 1 2026).
CHANGES = [date(2025, 3, 30), date(2025, 10, 26), date(2026, 3, 29), date(2026, 10, 25)]
CHANGES_NY = [date(2025, 11, 2), date(2026, 3, 8)]
# 01:00-02:00 is the spring gap / autumn overlap in London, 02:00-03:00 in New York.
TIMES = [time(0, 30), time(1, 0), time(1, 30), time(2, 0), time(2, 30), time(9, 0), time(23, 30)]
ZONES = ["Europe/London", "GMT Standard Time", "America/New_York", "UTC", "floating", "all-day"]
DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
# Who booked the entry, as clients write it: plain, with a (quoted) CN, odd-case MAILTO.
ORGANIZERS = [
    "",
    "ORGANIZER:mailto:duty.desk@council.example",
    'ORGANIZER;CN="Smith, Jo":MAILTO:Jo.Smith@Council.Example',
    "ORGANIZER;CN=Jo Smith:Mailto:JO@x.example",
    "organizer;cn=Pat:mAiLtO:pat\\,o@x.example",
]


def stamp(value: date | datetime, form: str) -> tuple[str, str]:
    """(parameters, value) of a date-time property written in ``form``."""
    if form == "all-day" or not isinstance(value, datetime):
        return ";VALUE=DATE", f"{value:%Y%m%d}"
    text = f"{value:%Y%m%dT%H%M%S}"
    if form == "UTC":
        return "", text + "Z"
    if form == "floating":
        return "", text
    return f";TZID={form}", text


def zone_of(form: str) -> ZoneInfo:
    return {"America/New_York": NEW_YORK, "UTC": UTC}.get(form, LONDON)


@st.composite
def rules(draw: st.DrawFn, start: date | datetime, form: str) -> str:
    freq = draw(st.sampled_from(["DAILY", "WEEKLY", "WEEKLY", "MONTHLY", "YEARLY"]))
    parts = [f"FREQ={freq}"]
    if draw(st.booleans()):
        parts.append(f"INTERVAL={draw(st.integers(1, 3))}")
    ending = draw(st.sampled_from(["count", "until", "none"]))
    if ending == "count":
        parts.append(f"COUNT={draw(st.integers(1, 40))}")
    elif ending == "until":
        day = (start if not isinstance(start, datetime) else start.date()) + timedelta(
            days=draw(st.integers(-3, 200))
        )
        until_form = draw(st.sampled_from(["UTC", "floating", "all-day"]))
        when = datetime.combine(day, draw(st.sampled_from(TIMES)))
        parts.append("UNTIL=" + stamp(when, until_form)[1])
    if freq in ("DAILY", "WEEKLY") and draw(st.booleans()):
        parts.append("BYDAY=" + ",".join(draw(st.lists(st.sampled_from(DAYS), min_size=1))))
    if freq in ("MONTHLY", "YEARLY"):
        shape = draw(st.sampled_from(["plain", "ordinal", "monthday", "both"]))
        if shape == "ordinal":
            n = draw(st.sampled_from(["1", "2", "-1", "+3", "4", "-2"]))
            parts.append(f"BYDAY={n}{draw(st.sampled_from(DAYS))}")
        if shape in ("monthday", "both"):
            days = draw(st.lists(st.sampled_from([1, 15, 28, 30, 31, -1, -7]), min_size=1))
            parts.append("BYMONTHDAY=" + ",".join(map(str, days)))
        if shape == "both":
            parts.append("BYDAY=" + ",".join(draw(st.lists(st.sampled_from(DAYS), min_size=1))))
        if freq == "YEARLY" and draw(st.booleans()):
            parts.append(f"BYMONTH={draw(st.sampled_from(['3', '10', '3,10', '2']))}")
    if draw(st.booleans()):
        parts.append(f"WKST={draw(st.sampled_from(['MO', 'SU']))}")
    # Now and then a shape the fast lane must hand over (it still has to agree).
    if draw(st.integers(0, 19)) == 13:
        parts.append(draw(st.sampled_from(["BYSETPOS=1", "BYHOUR=9", "COUNT=2"])))
    order = draw(st.permutations(parts[1:]))
    return ";".join([parts[0], *order])


@st.composite
def exdates(draw: st.DrawFn, start: date | datetime, form: str) -> list[str]:
    lines = []
    for _ in range(draw(st.integers(0, 3))):
        step = draw(st.sampled_from([1, 7, 14, 28, 30, 365]))
        hits = [start + timedelta(days=step * draw(st.integers(0, 8))) for _ in range(3)]
        values = hits[: draw(st.integers(1, 3))]
        ex_form = draw(
            st.sampled_from(
                [form, form, "UTC", "all-day", "floating", "Europe/London", "America/New_York"]
            )
        )
        if form == "all-day" and ex_form != "all-day":
            continue  # the full path would move the whole series into a zone; not ours
        if ex_form == "UTC" and isinstance(start, datetime) and form not in ("UTC", "floating"):
            values = [v.replace(tzinfo=zone_of(form)).astimezone(UTC) for v in values]  # type: ignore[union-attr]
        params, _ = stamp(values[0], ex_form)
        lines.append(f"EXDATE{params}:" + ",".join(stamp(v, ex_form)[1] for v in values))
    return lines


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, Window, Limits]:
    form = draw(st.sampled_from(ZONES))
    changes = CHANGES_NY if form == "America/New_York" else CHANGES
    day = draw(st.sampled_from(changes)) + timedelta(days=draw(st.integers(-15, 15)))
    start: date | datetime = (
        day if form == "all-day" else datetime.combine(day, draw(st.sampled_from(TIMES)))
    )
    params, value = stamp(start, form)
    lines = ["UID:series-1", "SUMMARY:Home visit - Family A", f"DTSTART{params}:{value}"]
    end_kind = draw(st.sampled_from(["dtend", "dtend", "duration", "none", "dtend-utc"]))
    if form == "all-day":
        # A negative span (an end before the start) is reported as written by both lanes.
        span = timedelta(days=draw(st.sampled_from([1, 2, 3, -2])))
        if end_kind.startswith("dtend"):
            lines.append(f"DTEND;VALUE=DATE:{start + span:%Y%m%d}")
        elif end_kind == "duration":
            lines.append(f"DURATION:{'-' if span.days < 0 else ''}P{abs(span.days)}D")
    else:
        minutes = draw(st.sampled_from([0, 30, 45, 60, 90, 150, 24 * 60 + 30, -60]))
        end = start + timedelta(minutes=minutes)
        if end_kind == "dtend":
            lines.append("DTEND{}:{}".format(*stamp(end, form)))
        elif end_kind == "dtend-utc" and form not in ("UTC", "floating"):
            utc_end = end.replace(tzinfo=zone_of(form)).astimezone(UTC)  # type: ignore[union-attr]
            lines.append(f"DTEND:{utc_end:%Y%m%dT%H%M%SZ}")
        elif end_kind == "duration":
            lines.append(f"DURATION:{'-' if minutes < 0 else ''}PT{abs(minutes)}M")
    lines.append("RRULE:" + draw(rules(start, form)))
    lines.extend(draw(exdates(start, form)))
    if draw(st.booleans()):
        lines.append("LOCATION:1 Mill Lane\\, Leeds LS6 2AB")
    organizer = draw(st.sampled_from(ORGANIZERS))
    if organizer:
        lines.append(organizer)
    lines = draw(st.permutations(lines))
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
        + (GMT_VTZ.replace("\n", "\r\n") if form == "GMT Standard Time" else "")
        + "BEGIN:VEVENT\r\n"
        + "".join(line + "\r\n" for line in lines)
        + "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    window_zone = draw(st.sampled_from([UTC, LONDON]))
    w_start = datetime.combine(
        day + timedelta(days=draw(st.integers(-40, 60))),
        draw(st.sampled_from([time(0), time(1, 30), time(9, 0, 0, 500), time(23, 59, 59)])),
        window_zone,
    )
    length = timedelta(hours=draw(st.sampled_from([1, 24, 24 * 7, 24 * 28, 24 * 120])))
    limits = draw(
        st.sampled_from(
            [
                DEFAULT_LIMITS,
                Limits(max_occurrences_per_series=3),
                Limits(max_rule_steps=5),
                Limits(max_occurrences=2),
            ]
        )
    )
    return text, Window(w_start, w_start + length), limits


def full_path(text: str, window: Window, limits: Limits) -> ParseResult:
    full = ParseResult()
    parse_full(text, window, LONDON, limits, full)
    full.occurrences.sort(key=lambda o: sort_key(o.start, LONDON))
    return full


def took_fast_lane(text: str, window: Window, limits: Limits) -> bool:
    """Whether parse_ical expands the series itself rather than handing it over."""
    fast = scan(text)
    if fast is None or len(fast.simple) != 1:
        return False
    e = fast.simple[0]
    start, end = window.start.astimezone(LONDON), window.end.astimezone(LONDON)
    try:
        expand_simple(e, simple_span(e, LONDON), start, end, LONDON, limits)
    except Exception:
        return False
    return True


def assert_same(text: str, window: Window, limits: Limits = DEFAULT_LIMITS) -> None:
    try:
        full = full_path(text, window, limits)
    except InputError as exc:  # the whole file refused: the fast lane must not read it either
        with pytest.raises(InputError, match=str(exc)):
            parse_ical(text, window=window, tz=LONDON, limits=limits)
        return
    fast = parse_ical(text, window=window, tz=LONDON, limits=limits)
    assert fast.occurrences == full.occurrences
    assert [repr(o) for o in fast.occurrences] == [repr(o) for o in full.occurrences]
    assert fast.problems == full.problems


WINTER = Window(datetime(2025, 10, 1, tzinfo=UTC), datetime(2026, 4, 30, tzinfo=UTC))


@settings(max_examples=700, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
@example(
    (
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART;TZID=Europe/London:20250329T013000"
        "\r\nRRULE:FREQ=DAILY;COUNT=3\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        WINTER,
        DEFAULT_LIMITS,
    )
).via("01:30 falls in the spring gap on the second day")
def test_generated_series_match_the_full_path(case: tuple[str, Window, Limits]) -> None:
    text, window, limits = case
    fast = took_fast_lane(text, window, limits)
    event("fast lane" if fast else "handed to the full path")
    assert_same(text, window, limits)


def test_generated_cases_mostly_take_the_fast_lane() -> None:
    """Guard against a vacuous differential test: most generated series are ours."""
    taken = []
    with_organizer = []

    @settings(max_examples=200, deadline=None, database=None)
    @given(cases())
    def collect(case: tuple[str, Window, Limits]) -> None:
        taken.append(took_fast_lane(*case))
        if taken[-1] and "ORGANIZER" in case[0].upper():
            with_organizer.append(case)

    collect()
    assert sum(taken) / len(taken) > 0.75
    # ... and the organizer is compared on series the fast lane read itself.
    assert len(with_organizer) > 50


def series(*lines: str, zone: str = "") -> str:
    body = "\r\n".join(["UID:s", "SUMMARY:Weekly visit", *lines])
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"
        + (GMT_VTZ.replace("\n", "\r\n") if zone else "")
        + f"BEGIN:VEVENT\r\n{body}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


OUTLOOK_WEEKLY = series(
    "DTSTART;TZID=GMT Standard Time:20250915T100000",
    "DTEND;TZID=GMT Standard Time:20250915T110000",
    "RRULE:FREQ=WEEKLY;BYDAY=MO",
    "EXDATE;TZID=GMT Standard Time:20251103T100000",
    "EXDATE:20251110T100000Z",
    "EXDATE;VALUE=DATE:20251117",
    zone="GMT",
)


@pytest.mark.parametrize(
    "text",
    [
        OUTLOOK_WEEKLY,
        series(
            "DTSTART;TZID=Europe/London:20250101T093000",
            "DURATION:PT1H",
            "RRULE:FREQ=MONTHLY;BYDAY=-1SU",
        ),
        series("DTSTART;VALUE=DATE:20251001", "RRULE:FREQ=WEEKLY;INTERVAL=2;UNTIL=20260101"),
        series("DTSTART:20251020T083000", "RRULE:FREQ=DAILY;UNTIL=20251030T083000"),
        series("DTSTART:20251020T083000Z", "RRULE:FREQ=WEEKLY;COUNT=10;BYDAY=MO,TH"),
    ],
)
def test_common_series_take_the_fast_lane_and_match(text: str) -> None:
    assert took_fast_lane(text, WINTER, DEFAULT_LIMITS)
    assert_same(text, WINTER)


def test_outlook_weekly_series_keeps_10_local_and_drops_every_exdate_form() -> None:
    occ = parse_ical(OUTLOOK_WEEKLY, window=WINTER, tz=LONDON).occurrences
    days = [o.start.date() for o in occ]  # type: ignore[union-attr]
    assert date(2025, 10, 27) in days and date(2025, 11, 24) in days
    assert not {date(2025, 11, 3), date(2025, 11, 10), date(2025, 11, 17)} & set(days)
    assert {o.start.hour for o in occ} == {10}  # type: ignore[union-attr]
    assert occ[0].recurrence_id == "2025-10-06T10:00:00+01:00"
    assert occ[4].recurrence_id == "2025-11-24T10:00:00+00:00"


@pytest.mark.parametrize(
    "extra",
    [
        # An override shares the UID: the whole series goes the full path together.
        "BEGIN:VEVENT\r\nUID:s\r\nRECURRENCE-ID;TZID=Europe/London:20251020T100000\r\n"
        "DTSTART;TZID=Europe/London:20251020T150000\r\nSUMMARY:Moved\r\nEND:VEVENT\r\n",
        # A second copy of the master.
        "BEGIN:VEVENT\r\nUID:s\r\nDTSTART;TZID=Europe/London:20251006T100000\r\n"
        "RRULE:FREQ=WEEKLY;COUNT=2\r\nEND:VEVENT\r\n",
    ],
)
@pytest.mark.parametrize("rule", ["RRULE:FREQ=WEEKLY;COUNT=4\r\n", ""])
def test_entries_sharing_a_uid_stay_together(extra: str, rule: str) -> None:
    master = (
        "BEGIN:VEVENT\r\nUID:s\r\nDTSTART;TZID=Europe/London:20251006T100000\r\n"
        f"DTEND;TZID=Europe/London:20251006T110000\r\n{rule}END:VEVENT\r\n"
    )
    text = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{master}{extra}END:VCALENDAR\r\n"
    assert_same(text, WINTER)
    fast = scan(text)
    assert fast is not None and fast.simple == []


@pytest.mark.parametrize(
    "lines",
    [
        ("DTSTART;TZID=Europe/London:20251006T100000", "rrule:freq=weekly;count=3"),
        ("DTSTART;TZID=Europe/London:20251006T100000", "RRULE;X-A=1:FREQ=WEEKLY;COUNT=3"),
        ("DTSTART;TZID=Europe/London:20251006T100000", "RRULE:FREQ=WEEKLY;COUNT=3;"),
        ("DTSTART;TZID=Europe/London:20251006T100000", "RRULE:FREQ=WEEKLY;COUNT=0"),
        ("DTSTART;TZID=Europe/London:20251006T100000", "RRULE:FREQ=WEEKLY;BYDAY=MO,"),
        ("DTSTART;TZID=Europe/London:20251006T100000", "RRULE:FREQ=MONTHLY;BYDAY=5MO"),
        ("DTSTART;TZID=Europe/London:20251006T100000", "RRULE:FREQ=WEEKLY", "RRULE:FREQ=DAILY"),
        ("DTSTART;TZID=Europe/London:20251006T100000", "RRULE:FREQ=WEEKLY", "RDATE:20251008"),
        ("DTSTART;TZID=Europe/London:20251006T100000", "EXDATE:20251013T090000Z"),
        (
            'DTSTART;TZID="Europe/London":20251006T100000',
            "RRULE:FREQ=WEEKLY;UNTIL=20251103T100000Z",
            "EXDATE;TZID=Europe/London:20251013T100000, 20251020T100000",
        ),
        (
            "DTSTART;TZID=Europe/London:20251006T100000",
            "RRULE:FREQ=WEEKLY;COUNT=5",
            "EXDATE;TZID=Customized Time Zone:20251013T100000",
        ),
        (
            "DTSTART;TZID=Europe/London:20251006T100000",
            "RRULE:FREQ=WEEKLY;COUNT=5",
            "BEGIN;X=1:VALARM",
            "TRIGGER:-PT5M",
            "begin:valarm",
            "Dear Team,",
            "end:valarm",
        ),
        (
            "DTSTART;TZID=Europe/London:20251006T100000",
            "RRULE:FREQ=WEEKLY;COUNT=5",
            'X-MS-OLK-SENDER;CN="A: B":mailto:a@example.org',
            "SUMMARY;LANGUAGE=en-GB:Visit^n",
        ),
        ("DTSTART;VALUE=DATE:20251006", "DTEND:20251006T100000Z", "RRULE:FREQ=WEEKLY"),
        (
            "DTSTART;TZID=Europe/London:20251006T100000",
            "DTEND:20251006T090000Z",
            "RRULE:FREQ=DAILY",
        ),
        ("DTSTART;VALUE=DATE:20251006", "RRULE:FREQ=WEEKLY", "EXDATE:20251013T000000Z"),
        ("DTSTART;TZID=Europe/London:20251006T100000", "RRULE:FREQ=DAILY;UNTIL=20251010"),
        ("DTSTART;VALUE=DATE:20251006", "RRULE:FREQ=DAILY;UNTIL=20251010T230000Z"),
    ],
)
def test_odd_lines_agree_with_the_full_path(lines: tuple[str, ...]) -> None:
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"
        + "BEGIN:VTIMEZONE\r\nTZID:Customized Time Zone\r\nBEGIN:STANDARD\r\n"
        "DTSTART:16010101T000000\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0500\r\n"
        "END:STANDARD\r\nEND:VTIMEZONE\r\n"
        + "BEGIN:VEVENT\r\nUID:odd\r\nSUMMARY:Visit\r\n"
        + "".join(line + "\r\n" for line in lines)
        + "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    assert_same(text, WINTER)


CUSTOM_VTZ = (
    "BEGIN:VTIMEZONE\r\nTZID:Customized Time Zone\r\nBEGIN:STANDARD\r\nDTSTART:16010101T000000"
    "\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0500\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
)
GMT_CRLF = GMT_VTZ.replace("\n", "\r\n")


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (GMT_CRLF, ""),
        (CUSTOM_VTZ, ""),
        (GMT_CRLF + CUSTOM_VTZ, ""),
        ("", GMT_CRLF),
        (GMT_CRLF.replace("TZID:GMT Standard Time", "TZID:Customized Time Zone"), ""),
        (GMT_CRLF.replace("END:DAYLIGHT", "END;X=1:DAYLIGHT"), ""),
        (GMT_CRLF.replace("END:DAYLIGHT", "BEGIN;X=1:X-PART\r\nEND:DAYLIGHT"), ""),
        (
            GMT_CRLF.replace("END:DAYLIGHT\r\n", "END:DAYLIGHT\r\nBEGIN:VEVENT\r\nEND:VEVENT\r\n"),
            "",
        ),
        (GMT_CRLF.replace("END:VTIMEZONE", "END:VTIMEZONE\r\nEND:VTIMEZONE"), ""),
        (GMT_CRLF.replace("END:VTIMEZONE\r\n", ""), ""),
    ],
)
def test_time_zone_definitions_are_skipped_only_when_the_full_path_ignores_them(
    before: str, after: str
) -> None:
    events = "".join(
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTART;TZID={zone}:2025100{day}T100000\r\n{rule}"
        "END:VEVENT\r\n"
        for uid, zone, day, rule in [
            ("a", "GMT Standard Time", 6, "RRULE:FREQ=WEEKLY;COUNT=3\r\n"),
            ("b", "Customized Time Zone", 7, ""),
            ("c", "Europe/London", 8, ""),
        ]
    )
    text = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{before}{events}{after}END:VCALENDAR\r\n"
    assert_same(text, WINTER)
