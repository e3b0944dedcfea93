"""An entry whose end is before its start is reported, not silently swapped (issue 8 item 9).

recurring-ical-events reads such an entry with its times exchanged, and the fast lane
copied that, so ``missing-times`` ("an end not after the start", README) never fired. Both
lanes now hand on the times as written; the window test keeps the library's span.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from syncd.domain import rules
from syncd.domain.model import Occurrence, Window
from syncd.parse.full import parse_full
from syncd.parse.ical import DEFAULT_LIMITS, ParseResult, parse_ical
from tests.test_ical import GMT_VTZ, _differential, cal

LONDON = ZoneInfo("Europe/London")
UTC = ZoneInfo("UTC")
OCT = Window(datetime(2025, 10, 1, tzinfo=UTC), datetime(2025, 11, 1, tzinfo=UTC))

DETAILS = (
    "DESCRIPTION:Postcode: DE4 3LT\\nTel: 01629 580000\\nReturn: going home\n"
    "SUMMARY:HV Smith family\n"
)
TEN_UTC = datetime(2025, 10, 14, 10, 0, tzinfo=UTC)
TEN_LONDON = datetime(2025, 10, 14, 10, 0, tzinfo=LONDON)
REVERSED = [
    # DTEND an hour before DTSTART, in UTC, in a Windows zone and floating (staff zone).
    ("UID:r1\nDTSTART:20251014T100000Z\nDTEND:20251014T090000Z\n", TEN_UTC),
    (
        "UID:r2\nDTSTART;TZID=GMT Standard Time:20251014T100000\n"
        "DTEND;TZID=GMT Standard Time:20251014T090000\n",
        TEN_LONDON,
    ),
    ("UID:r3\nDTSTART:20251014T100000\nDTEND:20251014T090000\n", TEN_LONDON),
    # A negative DURATION ends before the start just the same.
    ("UID:r4\nDTSTART:20251014T100000Z\nDURATION:-PT1H\n", TEN_UTC),
]


def _findings(occurrences: list[Occurrence]) -> list[str]:
    result = rules.check(
        occurrences, calendar="c", tz=LONDON, window=OCT, config=rules.RulesConfig()
    )
    return [f.rule for f in result.findings]


@pytest.mark.parametrize(("event", "start"), REVERSED)
def test_end_before_start_fires_missing_times(event: str, start: datetime) -> None:
    # The path `syncd check` takes: parse_ical, then rules.check.
    parsed = parse_ical(cal(event + DETAILS, extra=GMT_VTZ), window=OCT, tz=LONDON)
    assert parsed.problems == []
    (occ,) = parsed.occurrences
    assert occ.start == start  # as written, not the end
    assert occ.end is not None and occ.end < occ.start
    assert _findings(parsed.occurrences) == ["missing-times"]


@pytest.mark.parametrize(("event", "start"), REVERSED)
def test_the_full_path_reports_it_the_same(event: str, start: datetime) -> None:
    text = cal(event + DETAILS, extra=GMT_VTZ)
    full = ParseResult()
    parse_full(text, OCT, LONDON, DEFAULT_LIMITS, full)
    assert [o.start for o in full.occurrences] == [start]
    assert _findings(full.occurrences) == ["missing-times"]
    _differential(text)


def test_the_same_entry_the_right_way_round_is_complete() -> None:
    event = "UID:ok\nDTSTART:20251014T090000Z\nDTEND:20251014T100000Z\n"
    parsed = parse_ical(cal(event + DETAILS), window=OCT, tz=LONDON)
    assert _findings(parsed.occurrences) == []


def test_a_reversed_series_fires_on_every_occurrence() -> None:
    # Both lanes expand it over the library's span and report each occurrence as written.
    event = (
        "UID:s1\nDTSTART:20251006T100000Z\nDTEND:20251006T090000Z\n"
        "RRULE:FREQ=WEEKLY;COUNT=3\n" + DETAILS
    )
    text = cal(event)
    parsed = parse_ical(text, window=OCT, tz=LONDON)
    assert [o.start for o in parsed.occurrences] == [
        datetime(2025, 10, d, 11, 0, tzinfo=LONDON) for d in (6, 13, 20)
    ]
    assert all(o.end is not None and o.end < o.start for o in parsed.occurrences)
    assert _findings(parsed.occurrences) == ["missing-times"] * 3
    _differential(text)


def test_a_reversed_all_day_entry_keeps_its_written_dates() -> None:
    event = "UID:d1\nDTSTART;VALUE=DATE:20251023\nDTEND;VALUE=DATE:20251020\n" + DETAILS
    text = cal(event)
    (occ,) = parse_ical(text, window=OCT, tz=LONDON).occurrences
    assert (occ.start, occ.end) == (date(2025, 10, 23), date(2025, 10, 20))
    assert _findings([occ]) == ["missing-times"]
    _differential(text)
