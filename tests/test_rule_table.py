"""The rule table (syncd.domain.rules.RULES) against the README and against use.

The README's "Rule ids" table is the public list: it must name exactly the ids of RULES, in
the same order. Every rule must also be live: some corpus case or an example here fires it
through the real path (parse_ical, rules.check, tracking.problem_finding).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from syncd.domain.model import Occurrence, Window
from syncd.domain.rules import MESSAGES, RULE_IDS, RULES, UNREADABLE, RulesConfig, check
from syncd.domain.tracking import problem_finding
from syncd.parse.ical import parse_ical
from tests.corpus_loader import load_cases, run_corpus

README = Path(__file__).resolve().parent.parent / "README.md"
TZ = ZoneInfo("Europe/London")
WINDOW = Window(datetime(2025, 3, 1, tzinfo=TZ), datetime(2025, 3, 31, tzinfo=TZ))
ROW = re.compile(r"^\|\s*`([a-z-]+)`\s*\|")


def readme_rule_ids() -> list[str]:
    """The ids in the first column of the README's "## Rule ids" table, in order."""
    section = README.read_text(encoding="utf-8").split("\n## Rule ids\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    return [m.group(1) for line in section.splitlines() if (m := ROW.match(line))]


def test_readme_table_lists_exactly_the_rules_in_order() -> None:
    ids = readme_rule_ids()
    assert len(ids) >= 9, "the README's rule table was not found"
    assert ids == list(RULES)


def test_every_rule_has_its_id_a_title_and_a_message() -> None:
    for rule_id, rule in RULES.items():
        assert rule.id == rule_id
        assert rule.title and rule.title == rule.title.strip() and len(rule.title) <= 40
        # One short sentence of fixed text, "what: how to fix it."
        assert rule.message.endswith(".") and ":" in rule.message and len(rule.message) < 120


def test_rule_ids_and_messages_derive_from_the_table() -> None:
    assert tuple(i for i, r in RULES.items() if r.check is not None) == RULE_IDS
    assert dict(MESSAGES) == {i: RULES[i].message for i in RULE_IDS}
    assert RULES[UNREADABLE].check is None  # reported by the parser, not by check()


def test_titles_the_emails_use_are_in_the_table() -> None:
    # The renderer's own copy, until it reads RULES; then this compares the table with itself.
    from syncd.notify import render

    titles = getattr(render, "RULE_TITLES", None)
    if not isinstance(titles, dict):
        pytest.skip("the renderer keeps no title table of its own")
    assert {i: r.title for i, r in RULES.items()} == titles


# --- no dead rule ---------------------------------------------------------------------------


def fired_by_check(occ: Occurrence, config: RulesConfig) -> set[str]:
    result = check([occ], calendar="cal", tz=TZ, window=WINDOW, config=config)
    return {f.rule for f in result.findings}


def visit(description: str, *, summary: str = "HV Smith family") -> Occurrence:
    start = datetime(2025, 3, 3, 10, 0, tzinfo=TZ)
    return Occurrence(
        uid="u1",
        start=start,
        end=start.replace(hour=11),
        summary=summary,
        description=description,
    )


COMPLETE = "Postcode: DE4 3LT\nTel: 01629 580000\nReturn: going home\nPurpose: CIN review"

BROKEN_ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n"
    "BEGIN:VEVENT\r\nUID:broken-1\r\nDTSTART:2025-03-03 nonsense\r\nSUMMARY:HV Jones\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def examples() -> dict[str, set[str]]:
    """Rule id -> the rules one small example fires through the real path."""
    purpose = RulesConfig(require_purpose=True)
    out = {
        "missing-who": fired_by_check(visit(COMPLETE, summary="HV"), purpose),
        "missing-postcode": fired_by_check(visit(COMPLETE.replace("DE4 3LT", "")), purpose),
        "invalid-postcode": fired_by_check(visit(COMPLETE.replace("DE4 3LT", "DE4 9CC")), purpose),
        "missing-return": fired_by_check(visit(COMPLETE.replace("going home", "")), purpose),
        "missing-contact": fired_by_check(visit(COMPLETE.replace("01629 580000", "")), purpose),
        "invalid-contact": fired_by_check(
            visit(COMPLETE.replace("01629 580000", "07700 900123")), purpose
        ),
        "missing-purpose": fired_by_check(visit(COMPLETE.replace("CIN review", "")), purpose),
    }
    all_day = Occurrence(
        uid="u2",
        start=datetime(2025, 3, 3, tzinfo=TZ).date(),
        end=datetime(2025, 3, 4, tzinfo=TZ).date(),
        summary="HV Smith family",
        description=COMPLETE,
    )
    out["missing-times"] = fired_by_check(all_day, purpose)
    parsed = parse_ical(BROKEN_ICS, window=WINDOW, tz=TZ)
    out[UNREADABLE] = {problem_finding("cal", p, WINDOW).rule for p in parsed.problems}
    return out


def test_the_complete_example_breaks_no_rule() -> None:
    assert fired_by_check(visit(COMPLETE), RulesConfig(require_purpose=True)) == set()


@pytest.mark.parametrize("rule_id", list(RULES))
def test_each_rule_fires_alone_on_its_example(rule_id: str) -> None:
    assert examples()[rule_id] == {rule_id}


def test_no_dead_rule() -> None:
    got, _visits = run_corpus(load_cases())
    from_corpus = {r for rules in got.values() for r in rules}
    from_examples = {r for rules in examples().values() for r in rules}
    assert set(RULES) <= from_corpus | from_examples
    # The guidance rules are each met in real-looking entries, not only in examples here.
    assert set(RULE_IDS) - {"missing-purpose"} <= from_corpus
