"""Real-world calendars (tests/data/interop, see SOURCES.md) through parse_ical.

Every .ics/.txt file must parse without a traceback (a Problem or an InputError for the
deliberately broken ones is fine), and known facts about several files must hold.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from syncd.domain.model import Occurrence
from syncd.errors import InputError
from syncd.parse.ical import Limits, ParseResult, parse_ical
from syncd.sources.base import Window

DATA = Path(__file__).parent / "data" / "interop"
FILES = sorted(p for p in DATA.rglob("*") if p.suffix in (".ics", ".txt"))
UTC = ZoneInfo("UTC")
LONDON = ZoneInfo("Europe/London")
WIDE = Window(datetime(1980, 1, 1, tzinfo=UTC), datetime(2035, 1, 1, tzinfo=UTC))
TIGHT = Limits(max_occurrences_per_series=100)


def parse(name: str, window: Window = WIDE, tz: ZoneInfo = UTC) -> ParseResult:
    return parse_ical((DATA / name).read_bytes(), window=window, tz=tz, limits=TIGHT)


def utc(o: Occurrence) -> datetime:
    assert isinstance(o.start, datetime)
    return o.start.astimezone(UTC)


def test_corpus_is_present() -> None:
    assert len(FILES) >= 30


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(DATA)) for p in FILES])
def test_every_file_parses_without_a_traceback(path: Path) -> None:
    try:
        result = parse_ical(path.read_bytes(), window=WIDE, tz=LONDON, limits=TIGHT)
    except InputError:
        return
    for o in result.occurrences:
        assert o.uid
        assert isinstance(o.start, date)
        if isinstance(o.start, datetime):
            assert o.start.tzinfo == LONDON
            assert o.end is None or (isinstance(o.end, datetime) and o.end >= o.start)
        else:
            assert o.end is None or (type(o.end) is date and o.end >= o.start)
    assert result.occurrences or result.problems, "a calendar with events gave nothing"


def test_windows_zone_names_give_the_right_utc_offsets() -> None:
    r = parse("node-ical/ms_timezones.ics")
    starts = {(o.summary, utc(o)) for o in r.occurrences}
    # W. Europe Standard Time 09:00 in September (CEST) is 07:00 UTC.
    assert ("test", datetime(2020, 9, 10, 7, tzinfo=UTC)) in starts
    # Pacific Standard Time 12:00 in July (PDT) is 19:00 UTC.
    assert ("Not the actual summary either", datetime(2020, 7, 7, 19, tzinfo=UTC)) in starts
    # The malformed DTSTART;TZID="W. Europe Standard Time:2020..." entry is a Problem.
    unreadable = [p.summary for p in r.problems if "cannot be read" in p.message]
    assert unreadable == ["Log Yesterday's Jira time"]


def test_southern_hemisphere_display_name_follows_sydney_dst() -> None:
    r = parse("ical4j/Standup.ics")  # TZID="Canberra, Melbourne, Sydney", 09:30 daily
    by_day = {utc(o).date(): utc(o) for o in r.occurrences}
    assert by_day[date(2009, 3, 11)] == datetime(2009, 3, 11, 22, 30, tzinfo=UTC)  # AEDT +11
    assert by_day[date(2009, 4, 14)] == datetime(2009, 4, 14, 23, 30, tzinfo=UTC)  # AEST +10


def test_customized_time_zone_uses_the_files_own_definition_across_dst() -> None:
    window = Window(datetime(2020, 10, 26, tzinfo=UTC), datetime(2020, 11, 6, tzinfo=UTC))
    starts = [utc(o) for o in parse("node-ical/bad_ms_tz.ics", window).occurrences]
    assert starts == [
        datetime(2020, 10, 27, 14, 35, tzinfo=UTC),
        datetime(2020, 10, 29, 14, 35, tzinfo=UTC),
        datetime(2020, 11, 3, 15, 35, tzinfo=UTC),  # US clocks went back on 1 November
        datetime(2020, 11, 5, 15, 35, tzinfo=UTC),
    ]


def test_display_names_without_vtimezone() -> None:
    r = parse(
        "node-ical/Office-2012-owa.ics",
        Window(datetime(2020, 10, 27, tzinfo=UTC), datetime(2020, 10, 29, tzinfo=UTC)),
    )
    starts = {o.summary.strip(): utc(o) for o in r.occurrences}
    assert starts["TEST Syd"] == datetime(2020, 10, 28, 2, 30, tzinfo=UTC)  # 13:30 AEDT
    assert starts["TEST"] == datetime(2020, 10, 28, 17, 30, tzinfo=UTC)  # 13:30 EDT
    assert r.problems == []


def test_non_ascii_and_odd_tzids() -> None:
    (jp, *_rest) = parse("ical.net/Bug2916581.ics").occurrences  # 大阪、札幌、東京
    assert utc(jp) == datetime(2009, 12, 25, 2, tzinfo=UTC)  # 11:00 JST
    (br,) = parse("icalendar/issue_237_fail_to_parse_timezone_with_non_ascii_tzid.ics").occurrences
    assert utc(br) == datetime(2017, 5, 11, 16, 30, tzinfo=UTC)  # 13:30 in Brasília
    (bkk,) = parse("node-ical/exchange-custom-tz.ics").occurrences  # escaped commas in TZID
    assert utc(bkk) == datetime(2019, 4, 30, 2, tzinfo=UTC)  # 09:00 in Bangkok
    starts = {o.summary: utc(o) for o in parse("node-ical/test_with_int_tzid.ics").occurrences}
    assert starts["test export import"] == datetime(2023, 12, 15, 14, tzinfo=UTC)  # TZID: 1


def test_empty_tzid_is_a_problem_but_the_entry_is_still_read() -> None:
    r = parse("ical4j/blankTzid.ics")
    assert len(r.occurrences) == 1
    assert any("time-zone definition" in p.message for p in r.problems)


def test_broken_rrule_is_a_problem() -> None:
    r = parse("icalendar/issue_165_missing_event.ics")
    assert r.occurrences == []
    assert [p.message for p in r.problems] == ["the repetition rule cannot be read"]


def test_unfolded_description_and_missing_dtstart() -> None:
    r = parse("ics-parser/issue-343.ics")
    assert len(r.occurrences) == 1
    messages = sorted(p.message for p in r.problems)
    assert messages == ["some lines of this entry could not be read", "the entry has no start time"]


def test_cancelled_occurrence_of_a_series() -> None:
    (o,) = parse("calmailproc/test-03-2.calendar.ics").occurrences
    assert o.cancelled and utc(o) == datetime(2025, 3, 27, 14, tzinfo=UTC)
    assert o.recurrence_id == "2025-03-27T14:00:00+00:00"
    occ = parse("recurring-ical-events/issue_18_cancel_status.ics").occurrences
    assert [o.cancelled for o in occ] == [False, True, False]
    (whole,) = parse("calmailproc/test-01-2.calendar.ics").occurrences
    assert whole.cancelled and whole.recurrence_id == ""
    apple = {
        o.summary: o.cancelled for o in parse("node-ical/tentative-apple-calendar.ics").occurrences
    }
    assert apple == {"Tentative": False, "Confirmed": False, "Cancelled": True, "No Status": False}


def test_override_replaces_occurrence_of_all_day_series() -> None:
    window = Window(datetime(2026, 2, 18, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))
    occ = parse("node-ical/exchange_whole_day_moved_recurrence.ics", window).occurrences
    assert [(o.start, o.recurrence_id) for o in occ] == [
        (date(2026, 2, 19), "2026-02-19"),
        (date(2026, 2, 24), "2026-02-24"),
        (date(2026, 2, 27), "2026-02-26"),  # moved from Thursday to Friday
    ]
    assert all(type(o.end) is date for o in occ)


def test_override_moves_one_teams_meeting() -> None:
    occ = parse("radicale/event_issue2151.ics").occurrences
    moved = [o for o in occ if o.recurrence_id and utc(o).isoformat() != o.recurrence_id]
    assert [(utc(o), o.recurrence_id) for o in moved] == [
        (datetime(2026, 1, 30, 9, 30, tzinfo=UTC), "2026-01-30T10:00:00+00:00")
    ]


def test_all_day_holidays_are_dates() -> None:
    occ = parse("recurring-ical-events/Germany.ics").occurrences
    assert len(occ) == 159
    assert all(type(o.start) is date and type(o.end) is date for o in occ)


def test_x_wr_timezone_google_calendar() -> None:
    (first, *_rest) = parse("icalendar/x_location.ics").occurrences  # X-WR-TIMEZONE Zurich
    assert utc(first) == datetime(2016, 10, 28, 12, tzinfo=UTC)  # 14:00 CEST


def test_categories_and_escaped_text() -> None:
    cats = {c for o in parse("ical4j/outlook2.txt").occurrences for c in o.categories}
    assert cats == {"Confidential Category"}
    (o, *_rest) = parse("ical4j-transform-timezones/outlook2.txt").occurrences
    assert o.location == "äöüß_<>;„’’"
    # The first weekday (21 Feb) is excluded by EXDATE; 15:00 PST is 23:00 UTC.
    assert utc(o) == datetime(2014, 2, 24, 23, tzinfo=UTC)
