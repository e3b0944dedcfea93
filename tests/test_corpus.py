"""Accuracy of the rules on the hand-labelled corpus (issue item 14).

Each rule must reach precision and recall >= 0.98 on entries typed the way people really
type, and each must have enough positive examples for those numbers to mean something.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.corpus_loader import GUIDANCE_RULES, Case, load_cases, run_corpus, score

MIN_POSITIVES = 8
THRESHOLD = 0.98


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return load_cases()


def test_corpus_is_big_and_well_formed(cases: list[Case]) -> None:
    ids = Counter(c.id for c in cases)
    assert not [i for i, n in ids.items() if n > 1], "duplicate case ids"
    assert sum(c.visit for c in cases) >= 150
    assert sum(not c.visit for c in cases) >= 20
    for c in cases:
        assert c.expect <= set(GUIDANCE_RULES), c.id
        if not c.visit:
            assert not c.expect, f"{c.id}: a non-visit cannot break rules"


def test_every_rule_has_enough_positives(cases: list[Case]) -> None:
    positives = Counter(r for c in cases for r in c.expect)
    for rule in GUIDANCE_RULES:
        assert positives[rule] >= MIN_POSITIVES, (rule, positives[rule])


def test_visit_recognition_matches_labels(cases: list[Case]) -> None:
    _, visits = run_corpus(cases)
    wrong = sorted(c.id for c in cases if c.visit != (c.id in visits))
    assert not wrong


@pytest.mark.parametrize("rule", GUIDANCE_RULES)
def test_rule_precision_and_recall(cases: list[Case], rule: str) -> None:
    got, _ = run_corpus(cases)
    (s,) = [s for s in score(cases, got) if s.rule == rule]
    misses = sorted(c.id for c in cases if (rule in c.expect) != (rule in got[c.id]))
    assert s.precision >= THRESHOLD, (s, misses)
    assert s.recall >= THRESHOLD, (s, misses)
