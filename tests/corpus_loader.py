"""Reads the labelled accuracy corpus (tests/corpus/*.toml) for the test and the bench."""

from __future__ import annotations

import tomllib
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from syncd.domain.model import Finding, Occurrence
from syncd.domain.rules import RULE_IDS, RulesConfig, check
from syncd.sources.base import Window

CORPUS_DIR = Path(__file__).parent / "corpus"
TZ = ZoneInfo("Europe/London")
GUIDANCE_RULES = RULE_IDS[:-1]


@dataclass(frozen=True)
class Case:
    id: str
    cal: str
    occ: Occurrence
    visit: bool
    expect: frozenset[str]
    note: str


def _when(value: Any) -> datetime | date:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=TZ)
    assert isinstance(value, date)
    return value


def load_cases(directory: Path = CORPUS_DIR) -> list[Case]:
    cases: list[Case] = []
    for path in sorted(directory.glob("*.toml")):
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        for raw in data["case"]:
            occ = Occurrence(
                uid=f"{raw['id']}@corpus",
                start=_when(raw["start"]),
                end=_when(raw["end"]) if "end" in raw else None,
                summary=raw.get("summary", ""),
                location=raw.get("location", ""),
                description=raw.get("description", ""),
                categories=tuple(raw.get("categories", ())),
                cancelled=raw.get("cancelled", False),
                postal_code=raw.get("postal_code", ""),
            )
            cases.append(
                Case(
                    id=raw["id"],
                    cal=raw["cal"],
                    occ=occ,
                    visit=raw.get("visit", True),
                    expect=frozenset(raw["expect"]),
                    note=raw.get("note", ""),
                )
            )
    return cases


def run_corpus(cases: list[Case]) -> tuple[dict[str, frozenset[str]], set[str]]:
    """Check each calendar as the daemon would; return (case id -> rule ids, visit ids)."""
    by_cal: dict[str, list[Case]] = defaultdict(list)
    for c in cases:
        by_cal[c.cal].append(c)
    got: dict[str, set[str]] = {c.id: set() for c in cases}
    visits: set[str] = set()
    by_uid = {c.occ.uid: c.id for c in cases}
    window = Window(datetime(2000, 1, 1, tzinfo=TZ), datetime(2100, 1, 1, tzinfo=TZ))
    for cal, members in by_cal.items():
        result = check(
            [c.occ for c in members], calendar=cal, tz=TZ, window=window, config=RulesConfig()
        )
        visits.update(by_uid[o.uid] for o in result.visits)
        f: Finding
        for f in result.findings:
            got[by_uid[f.uid]].add(f.rule)
    return {k: frozenset(v) for k, v in got.items()}, visits


@dataclass(frozen=True)
class Score:
    rule: str
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def score(cases: list[Case], got: dict[str, frozenset[str]]) -> list[Score]:
    out = []
    for rule in GUIDANCE_RULES:
        tp = sum(1 for c in cases if rule in c.expect and rule in got[c.id])
        fp = sum(1 for c in cases if rule not in c.expect and rule in got[c.id])
        fn = sum(1 for c in cases if rule in c.expect and rule not in got[c.id])
        out.append(Score(rule, tp, fp, fn))
    return out


__all__ = ["Case", "Score", "load_cases", "run_corpus", "score", "timedelta"]
