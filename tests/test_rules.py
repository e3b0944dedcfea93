"""Visit recognition and the rules with stable ids (syncd.domain.rules)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pydantic
import pytest

from syncd.domain.model import Occurrence
from syncd.domain.rules import MESSAGES, RULE_IDS, CheckResult, RulesConfig, check, is_visit
from syncd.sources.base import Window

TZ = ZoneInfo("Europe/London")
DEFAULT = RulesConfig()
COMPLETE = "Address: 14 Larch Close, Matlock\nPostcode: DE4 3LT\nTel: 07911 123456\nReturn: home"
WIDE = Window(datetime(2025, 1, 1, tzinfo=TZ), datetime(2026, 1, 1, tzinfo=TZ))


def visit(
    summary: str = "HV Smith family",
    description: str = COMPLETE,
    *,
    start: datetime | date = datetime(2025, 3, 3, 10, 0, tzinfo=TZ),
    end: datetime | date | str | None = "1h",
    uid: str = "",
    **kw: object,
) -> Occurrence:
    if end == "1h":
        assert isinstance(start, datetime)
        end = start + timedelta(hours=1)
    assert not isinstance(end, str)
    return Occurrence(
        uid=uid or f"{summary}-{start}",
        start=start,
        end=end,
        summary=summary,
        description=description,
        **kw,  # type: ignore[arg-type]
    )


def run(*occs: Occurrence, config: RulesConfig = DEFAULT, window: Window = WIDE) -> CheckResult:
    return check(list(occs), calendar="cal-1", tz=TZ, window=window, config=config)


def rules_of(result: CheckResult, occ: Occurrence) -> list[str]:
    return [f.rule for f in result.findings if f.occurrence_key == occ.key]


# --- recognition -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "summary",
    ["HV - Smith", "Visit: Jones", "home visit Patel", "HV", "hv brown", "VISIT - Mosaic 4412873",
     "Home-visit Moore", "Home  Visit: Lee", "[HV] Smith", "HV:Smith", "- HV Smith"],
)  # fmt: skip
def test_summary_markers_make_a_visit(summary: str) -> None:
    assert is_visit(visit(summary), DEFAULT)


@pytest.mark.parametrize(
    "summary",
    ["Visitors day", "HVAC service", "Revisit plan", "Team visit planning", "Visiting hours",
     "Visitor parking", "Home Start meeting", "Care home visit - Nan", "Visits rota", "HV2 test",
     "Home visits admin", ""],
)  # fmt: skip
def test_lookalikes_are_not_visits(summary: str) -> None:
    assert not is_visit(visit(summary), DEFAULT)


@pytest.mark.parametrize("category", ["Home Visit", "home visit", "HOME VISIT", " Home Visit "])
def test_home_visit_category_in_any_case(category: str) -> None:
    assert is_visit(visit("Smith", categories=("Red category", category)), DEFAULT)


def test_cancelled_occurrence_is_not_a_visit_and_not_the_last() -> None:
    early = visit("HV Smith", "Postcode: DE4 3LT\nTel: 07911 123456")
    late = visit("HV Jones", start=datetime(2025, 3, 3, 15, 0, tzinfo=TZ), cancelled=True)
    result = run(early, late)
    assert result.visits == [early]
    assert rules_of(result, early) == ["missing-return"]


def test_config_adds_prefixes_and_categories() -> None:
    cfg = RulesConfig(visit_prefixes=["SV", "Statutory visit"], visit_categories=["Visits"])
    assert not is_visit(visit("SV Smith"), DEFAULT)
    assert is_visit(visit("SV Smith"), cfg)
    assert is_visit(visit("statutory visit - Lee"), cfg)
    assert is_visit(visit("Smith", categories=("visits",)), cfg)
    assert is_visit(visit("HV Smith"), cfg), "defaults stay"
    # An added marker is not a name.
    assert rules_of(run(visit("SV -"), config=cfg), visit("SV -")) == ["missing-who"]


# --- each rule with realistic entries --------------------------------------------------------


@pytest.mark.parametrize(
    ("summary", "description", "expected"),
    [
        ("HV Smith family", COMPLETE, []),
        ("HV", COMPLETE, ["missing-who"]),
        ("Home visit -", COMPLETE, ["missing-who"]),
        ("Visit:", COMPLETE, ["missing-who"]),
        ("Visit - Mosaic 4412873", COMPLETE, []),
        ("HV", "Visiting: Ellis family\n" + COMPLETE, []),
        ("HV Khan", "Address: 41 Derwent St\nTel: 07911 123456\nReturn: home", ["missing-postcode"]),
        ("HV Khan", "Postcode: DE4 3CT\nTel: 07911 123456\nReturn: home", ["invalid-postcode"]),
        ("HV Khan", "Postcode - DEA 3LT\nTel: 07911 123456\nReturn: home", ["invalid-postcode"]),
        ("HV Khan", "Postcode: tbc\nTel: 07911 123456\nReturn: home", ["missing-postcode"]),
        ("HV Khan", "lives at de43lt. Tel: 07911 123456. Return: home", []),
        ("HV Khan", "Postcode: DE4 3LT\nReturn: home", ["missing-contact"]),
        ("HV Khan", "Postcode: DE4 3LT\nTel: 07700 900123\nReturn: home", ["invalid-contact"]),
        ("HV Khan", "Postcode: DE4 3LT\nMob. 07911 12345\nReturn: home", ["invalid-contact"]),
        ("HV Khan", "DE4 3LT. 07700 900123 is on file. Return: home", ["missing-contact"]),
        ("HV Khan", "DE4 3LT\nTel: 07700 900123\nMob: 07911 123456\nReturn: home", []),
        ("HV Khan", "DE4 3LT\nTel: 07911 123456\nReturn: office", ["missing-return"]),
        ("HV Khan", "DE4 3LT\nTel: 07911 123456\nReturn: office 4.30pm", []),
        ("HV Khan", "DE4 3LT\nTel: 07911 123456\nkids home from school 3.15", ["missing-return"]),
        ("HV", "Postcode: QE4 3LT\nTel: 07700 900123", [
            "missing-who", "invalid-postcode", "missing-return", "invalid-contact"]),
        ("Visit", "see notes on Mosaic", [
            "missing-who", "missing-postcode", "missing-return", "missing-contact"]),
    ],
)  # fmt: skip
def test_rules_on_realistic_entries(summary: str, description: str, expected: list[str]) -> None:
    occ = visit(summary, description)
    result = run(occ)
    assert [f.rule for f in result.findings] == expected


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (date(2025, 3, 3), date(2025, 3, 4)),
        (date(2025, 3, 3), None),
        (datetime(2025, 3, 3, 10, 0, tzinfo=TZ), None),
        (datetime(2025, 3, 3, 10, 0, tzinfo=TZ), datetime(2025, 3, 3, 10, 0, tzinfo=TZ)),
        (datetime(2025, 3, 3, 10, 0, tzinfo=TZ), datetime(2025, 3, 3, 9, 0, tzinfo=TZ)),
    ],
)
def test_missing_times(start: datetime | date, end: datetime | date | None) -> None:
    occ = visit(start=start, end=end)
    assert rules_of(run(occ), occ) == ["missing-times"]


def test_invalid_and_missing_never_both_for_one_field() -> None:
    occ = visit("HV", "Postcode: DE4\nPostcode: DE4 3CT\nTel: 07700 900123\nMob: 1234")
    rules = rules_of(run(occ), occ)
    assert "invalid-postcode" in rules and "missing-postcode" not in rules
    assert "invalid-contact" in rules and "missing-contact" not in rules


def test_findings_in_rule_order_and_visits_by_start() -> None:
    late = visit("HV", "", start=datetime(2025, 3, 3, 14, 0, tzinfo=TZ), end=None)
    early = visit("Visit:", "Postcode: DE4\nTel: 07700 900123")
    result = run(late, early)
    assert result.visits == [early, late]
    keys = [f.occurrence_key for f in result.findings]
    assert keys == sorted(keys, key=[early.key, late.key].index)
    for occ in (early, late):
        rules = rules_of(result, occ)
        assert rules == sorted(rules, key=RULE_IDS.index)


def test_finding_fields_and_safe_messages() -> None:
    occ = visit("HV Nowak", "Postcode: DE11 9CC\nTel: 07700 900123\nReturn: office")
    result = run(occ)
    assert {f.rule for f in result.findings} == {
        "invalid-postcode",
        "missing-return",
        "invalid-contact",
    }
    for f in result.findings:
        assert f.calendar == "cal-1"
        assert f.uid == occ.uid and f.occurrence_key == occ.key
        assert f.start == occ.start and f.summary == occ.summary
        assert f.message == MESSAGES[f.rule]
        for secret in ("Nowak", "DE11", "9CC", "07700", "900123"):
            assert secret not in f.message


def test_every_message_is_one_short_sentence() -> None:
    assert set(MESSAGES) == set(RULE_IDS)
    for message in MESSAGES.values():
        assert message.endswith(".") and len(message) < 120 and ":" in message


# --- last visit of the day -------------------------------------------------------------------


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=TZ)


NO_RETURN = "Postcode: DE4 3LT\nTel: 07911 123456"


def test_only_the_last_visit_of_each_day_needs_the_return() -> None:
    a = visit("HV A", NO_RETURN, start=at(3, 9))
    b = visit("HV B", NO_RETURN, start=at(3, 11))
    c = visit("HV C", NO_RETURN, start=at(3, 14))
    d = visit("HV D", NO_RETURN + "\nback to office 16:30", start=at(4, 9))
    e = visit("HV E", NO_RETURN + "\nGoing straight home", start=at(4, 8))
    result = run(c, a, b, d, e)
    assert [(f.summary, f.rule) for f in result.findings] == [("HV C", "missing-return")]


def test_going_home_on_an_earlier_visit_does_not_cover_the_last() -> None:
    a = visit("HV A", NO_RETURN + "\nGoing straight home", start=at(4, 9))
    b = visit("HV B", NO_RETURN, start=at(4, 13))
    assert [f.summary for f in run(a, b).findings] == ["HV B"]


def test_equal_latest_starts_both_need_the_return() -> None:
    a = visit("HV A", NO_RETURN, start=at(3, 14))
    b = visit("HV B", NO_RETURN, start=at(3, 14))
    assert sorted(f.summary for f in run(a, b).findings) == ["HV A", "HV B"]


def test_all_day_visit_is_not_last_when_a_timed_visit_exists() -> None:
    allday = visit("HV A - sometime", NO_RETURN, start=date(2025, 3, 6), end=date(2025, 3, 7))
    timed = visit("HV B", NO_RETURN + "\nReturn: home", start=at(6, 10))
    result = run(allday, timed)
    assert rules_of(result, allday) == ["missing-times"]
    assert rules_of(result, timed) == []


def test_lone_all_day_visit_is_the_last_of_its_day() -> None:
    allday = visit("HV A", NO_RETURN, start=date(2025, 3, 7), end=None)
    assert rules_of(run(allday), allday) == ["missing-times", "missing-return"]


def test_local_date_across_the_october_clock_change() -> None:
    # Sat 25 Oct 22:00 BST, Sun 26 Oct 00:30 BST (23:30 UTC on the 25th), Sun 09:30 GMT.
    sat = visit("HV A", NO_RETURN, start=datetime(2025, 10, 25, 21, 0, tzinfo=UTC))
    sun_early = visit("HV B", NO_RETURN, start=datetime(2025, 10, 25, 23, 30, tzinfo=UTC))
    sun = visit("HV C", NO_RETURN, start=datetime(2025, 10, 26, 9, 30, tzinfo=UTC))
    # Mon 27 Oct 23:30 GMT is still the 27th.
    mon_late = visit("HV D", NO_RETURN, start=datetime(2025, 10, 27, 23, 30, tzinfo=UTC))
    mon = visit("HV E", NO_RETURN, start=datetime(2025, 10, 27, 10, 0, tzinfo=TZ))
    result = run(sun, mon, sat, sun_early, mon_late)
    assert sorted(f.summary for f in result.findings) == ["HV A", "HV C", "HV D"]


def test_local_date_across_the_march_clock_change() -> None:
    # Sun 30 Mar 2025: 00:30 GMT and 23:30 BST (22:30 UTC) are the same local day.
    a = visit("HV A", NO_RETURN, start=datetime(2025, 3, 30, 0, 30, tzinfo=UTC))
    b = visit("HV B", NO_RETURN, start=datetime(2025, 3, 30, 22, 30, tzinfo=UTC))
    c = visit("HV C", NO_RETURN, start=datetime(2025, 3, 30, 23, 30, tzinfo=UTC))  # 31st
    assert sorted(f.summary for f in run(a, b, c).findings) == ["HV B", "HV C"]


def test_return_on_every_visit_tightens_the_rule() -> None:
    a = visit("HV A", NO_RETURN, start=at(3, 9))
    b = visit("HV B", NO_RETURN + "\nReturn: home", start=at(3, 11))
    cfg = RulesConfig(return_on_every_visit=True)
    assert [(f.summary, f.rule) for f in run(a, b, config=cfg).findings] == [
        ("HV A", "missing-return")
    ]


# --- window ----------------------------------------------------------------------------------


def test_window_start_inclusive_end_exclusive() -> None:
    w = Window(at(3, 9), at(3, 12))
    inside = visit("HV A", start=at(3, 9))
    at_end = visit("HV B", start=at(3, 12))
    before = visit("HV C", start=at(3, 8, 59))
    assert run(inside, at_end, before, window=w).visits == [inside]


def test_visit_after_the_window_still_decides_the_last_of_the_day() -> None:
    w = Window(at(3, 0), at(3, 12))
    morning = visit("HV A", NO_RETURN, start=at(3, 9))
    afternoon = visit("HV B", NO_RETURN, start=at(3, 15))
    result = run(morning, afternoon, window=w)
    assert result.visits == [morning] and result.findings == []


def test_all_day_visit_compared_by_local_date() -> None:
    w = Window(at(3, 9), at(5, 0))
    today = visit("HV A", start=date(2025, 3, 3), end=date(2025, 3, 4))
    tomorrow = visit("HV B", start=date(2025, 3, 4), end=date(2025, 3, 5))
    after = visit("HV C", start=date(2025, 3, 5), end=date(2025, 3, 6))
    yesterday = visit("HV D", start=date(2025, 3, 2), end=date(2025, 3, 3))
    assert run(after, tomorrow, today, yesterday, window=w).visits == [today, tomorrow]


# --- config ----------------------------------------------------------------------------------


def test_require_purpose_adds_the_rule_last() -> None:
    cfg = RulesConfig(require_purpose=True)
    bare = visit("HV Smith", COMPLETE)
    labelled = visit("HV Smith", COMPLETE + "\nPurpose: CIN", start=at(4, 10))
    worded = visit("HV Smith", "Statutory visit.\n" + COMPLETE, start=at(5, 10))
    result = run(bare, labelled, worded, config=cfg)
    assert [(f.occurrence_key, f.rule) for f in result.findings] == [(bare.key, "missing-purpose")]
    assert run(bare).findings == [], "off by default"


@pytest.mark.parametrize(
    "table",
    [
        {"disabled_rules": ["missing-who"]},
        {"rules": {"missing-return": False}},
        {"missing_contact": False},
    ],
)
def test_config_cannot_switch_off_guidance_rules(table: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        RulesConfig.model_validate(table)


def test_config_is_frozen_and_documented() -> None:
    cfg = RulesConfig(visit_prefixes=["SV"])
    with pytest.raises(pydantic.ValidationError):
        cfg.require_purpose = True  # type: ignore[misc]
    for name, info in RulesConfig.model_fields.items():
        assert info.description and len(info.description) > 20, name


def test_no_hint_reads_like_an_answer() -> None:
    # A real postcode or number in a hint gets copied into entries as if it were the data.
    import re

    from syncd.domain.extract import valid_postcode

    for message in MESSAGES.values():
        for token in re.findall(r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}", message.upper()):
            assert not valid_postcode(token), message
        assert not re.search(r"\d{4,}|\d{1,2}:\d{2}", message), message
