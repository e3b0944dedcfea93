"""Hostile input: every case ends within seconds with a Problem or an InputError, never a hang.

Issue text: "a recurrence that would expand to millions of occurrences, a multi-megabyte
property, tens of thousands of events in one file, odd encodings".
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from syncd.errors import InputError
from syncd.parse.ical import DEFAULT_LIMITS, Limits, ParseResult, parse_ical
from syncd.sources.base import Window

UTC = ZoneInfo("UTC")
LONDON = ZoneInfo("Europe/London")
WINDOW = Window(datetime(2025, 10, 1, tzinfo=UTC), datetime(2025, 10, 29, tzinfo=UTC))


def cal(body: str) -> str:
    return f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//hostile//EN\n{body}END:VCALENDAR\n"


def event(uid: str, extra: str, start: str = "20251001T090000Z") -> str:
    return f"BEGIN:VEVENT\nUID:{uid}\nSUMMARY:Visit {uid}\nDTSTART:{start}\n{extra}\nEND:VEVENT\n"


def parse(text: str | bytes, limits: Limits = DEFAULT_LIMITS) -> ParseResult:
    return parse_ical(text, window=WINDOW, tz=LONDON, limits=limits)


GOOD = event("good", "DTEND:20251002T100000Z")


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("rule", "start", "message"),
    [
        # 2.4 million occurrences inside the 28-day window.
        ("FREQ=SECONDLY", "20251001T000000Z", "repeats more than 2000 times in the checked"),
        ("FREQ=SECONDLY;COUNT=5000000", "20251001T000000Z", "repeats more than 2000"),
        # Hundreds of millions before the window even starts.
        ("FREQ=SECONDLY", "19900101T000000Z", "before the checked period"),
        ("FREQ=MINUTELY;INTERVAL=1", "20000101T000000Z", "before the checked period"),
        # Filters that never (or almost never) match: dateutil would walk to the year 9999.
        ("FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=31", "20000101T000000Z", "more often than daily"),
        ("FREQ=HOURLY;BYSETPOS=2", "20250101T000000Z", "more often than daily"),
        ("FREQ=SECONDLY;BYHOUR=3;BYMINUTE=0;BYSECOND=0", "19000101T000000Z", "more often"),
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "20250101T000000Z", "never matches"),
        ("FREQ=WEEKLY;BYMONTH=4;BYMONTHDAY=31", "20250101T000000Z", "never matches"),
        ("FREQ=DAILY;BYSETPOS=2", "20250101T000000Z", "not supported"),
    ],
)
def test_runaway_repetition_is_bounded(rule: str, start: str, message: str) -> None:
    r = parse(cal(event("bomb", f"RRULE:{rule}", start) + GOOD))
    assert [p.uid for p in r.problems] == ["bomb"]
    assert message in r.problems[0].message
    assert len([o for o in r.occurrences if o.uid == "bomb"]) <= 2000
    assert [o.uid for o in r.occurrences if o.uid != "bomb"] == ["good"]


@pytest.mark.timeout(20)
def test_yearly_rule_with_impossible_date_is_harmless() -> None:
    r = parse(
        cal(event("feb30", "RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "20250101T090000Z") + GOOD)
    )
    assert [o.uid for o in r.occurrences] == ["good"]


@pytest.mark.timeout(20)
def test_multi_megabyte_property_is_truncated() -> None:
    big = "x" * 5_000_000
    r = parse(cal(event("big", f"DESCRIPTION:{big}\nLOCATION:{big}") + GOOD))
    (o,) = [o for o in r.occurrences if o.uid == "big"]
    assert len(o.description) == Limits().max_property_chars
    assert len(o.location) == Limits().max_property_chars
    assert {p.uid for p in r.problems} == {"big"}
    assert any("DESCRIPTION" in p.message for p in r.problems)


@pytest.mark.timeout(20)
def test_tens_of_thousands_of_events() -> None:
    n = 20_000
    body = "".join(
        event(
            f"e{i}",
            "DURATION:PT1H",
            f"{datetime(2025, 10, 1, 8) + timedelta(minutes=i):%Y%m%dT%H%M%SZ}",
        )
        for i in range(n)
    )
    r = parse(cal(body))
    assert len(r.occurrences) == n and r.problems == []


@pytest.mark.timeout(20)
def test_too_many_components_is_an_input_error_before_parsing() -> None:
    body = "BEGIN:VEVENT\nUID:x\nEND:VEVENT\n" * 60_000
    with pytest.raises(InputError, match="too many entries"):
        parse(cal(body))


@pytest.mark.timeout(20)
def test_total_occurrence_limit() -> None:
    body = "".join(event(f"d{i}", "RRULE:FREQ=DAILY") for i in range(100))
    r = parse(cal(body), Limits(max_occurrences=1000))
    assert len(r.occurrences) == 1000
    assert any("more than 1000 entries" in p.message for p in r.problems)


@pytest.mark.timeout(20)
def test_oversized_file_is_refused() -> None:
    with pytest.raises(InputError, match="file too large"):
        parse(cal(GOOD) + " " * 2_000, Limits(max_bytes=1_000))


@pytest.mark.timeout(20)
def test_huge_date_lists_are_bounded() -> None:
    rdates = ",".join(
        f"{datetime(2025, 1, 1) + timedelta(hours=i):%Y%m%dT%H%M%SZ}" for i in range(10_000)
    )
    r = parse(cal(event("rd", f"RDATE:{rdates}") + GOOD))
    assert [p.uid for p in r.problems] == ["rd"]
    assert [o.uid for o in r.occurrences] == ["good"]


@pytest.mark.timeout(20)
def test_thousands_of_overrides_for_one_series() -> None:
    overrides = "".join(
        f"BEGIN:VEVENT\nUID:s\nRECURRENCE-ID:{d:%Y%m%dT%H%M%SZ}\nDTSTART:{d:%Y%m%dT%H%M%SZ}\nEND:VEVENT\n"
        for d in (datetime(2020, 1, 1, 9) + timedelta(days=i) for i in range(3_000))
    )
    r = parse(cal(event("s", "RRULE:FREQ=DAILY", "20200101T090000Z") + overrides))
    assert len([o for o in r.occurrences if o.uid == "s"]) == 28


@pytest.mark.timeout(20)
def test_deeply_nested_components_do_not_crash() -> None:
    body = "BEGIN:VEVENT\n" * 5_000 + "END:VEVENT\n" * 5_000
    try:
        r = parse(cal(body + GOOD))
    except InputError:
        return
    assert "good" in [o.uid for o in r.occurrences]


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "raw",
    [
        cal(GOOD).encode("utf-16-be"),
        cal(GOOD).encode("utf-32"),
        cal(GOOD).replace("Visit", "Vis\x00it").encode(),
        cal(GOOD).encode() + b"\xff\xfe\xfd",
        cal(GOOD).replace("Visit", "Vis\udcffit"),
        cal(GOOD).replace("\n", "\r"),
        b"\xef\xbb\xbf\xef\xbb\xbf" + cal(GOOD).encode(),
    ],
)
def test_odd_encodings_give_a_result_or_an_input_error(raw: str | bytes) -> None:
    try:
        r = parse(raw)
    except InputError as exc:
        assert "Visit" not in str(exc)
        return
    assert all(o.uid == "good" for o in r.occurrences)


@pytest.mark.timeout(20)
def test_garbage_lines_and_unbalanced_components() -> None:
    text = cal(GOOD + "BEGIN:VEVENT\nUID:open\nDTSTART:20251001T090000Z\n::::\n;;;;\n")
    try:
        r = parse(text)
    except InputError:
        return
    assert "good" in [o.uid for o in r.occurrences]
