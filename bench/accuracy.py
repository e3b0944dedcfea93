"""Accuracy of the rules on tests/corpus, and the speed of ``rules.check``.

    python bench/accuracy.py            # per-rule TP/FP/FN, precision, recall
    python bench/accuracy.py --speed    # also: check() on 10,000 synthetic visits, 5 runs

The speed run builds distinct entries (every visit its own family name, postcode and phone
number) so the phone-validation memo cannot flatter the result; ``--repeat-numbers`` uses a
pool of 500 numbers instead, as a real team's calendars do.

Cold check() speed, 2026-11-25, shared 2-core box, medians of 5 runs, back to back:

                            before (ca7e2f8)   after (extract/rules speed work)
    all entries distinct        26.7k/s            30.0k/s
    pool of 500 numbers         28.5k/s            32.0k/s

About 33 us a visit remain: ~5 us rules and findings, ~22 us extract (five or so regex scans
of the entry at 1.5-3.5 us each, field logic, the result), the rest validating numbers
first seen. tests/test_extract_diff.py holds the answers equal to the extractor before.

2026-12-02, loaded 2-core box, medians of 3 runs: the matcher pre-filter
(``phones.matcher_may_find``) took the cold all-distinct run from 4,974 to 7,437 visits/s;
an entry whose only number is invalid (07700 900xxx) went from ~1.26 ms to ~0.15 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from syncd.domain import extract as extract_mod
from syncd.domain.model import Occurrence
from syncd.domain.rules import RulesConfig, check
from syncd.sources.base import Window
from tests.corpus_loader import load_cases, run_corpus, score

TZ = ZoneInfo("Europe/London")


def accuracy() -> int:
    cases = load_cases()
    got, visits = run_corpus(cases)
    print(
        f"corpus: {len(cases)} entries, {sum(c.visit for c in cases)} visits, "
        f"{len(visits)} recognised"
    )
    print(f"{'rule':<18}{'TP':>5}{'FP':>5}{'FN':>5}{'precision':>11}{'recall':>8}")
    worst = 1.0
    for s in score(cases, got):
        print(f"{s.rule:<18}{s.tp:>5}{s.fp:>5}{s.fn:>5}{s.precision:>11.3f}{s.recall:>8.3f}")
        worst = min(worst, s.precision, s.recall)
    for c in cases:
        if c.expect != got[c.id]:
            print(f"  {c.id}: expected {sorted(c.expect)} got {sorted(got[c.id])}")
    return 0 if worst >= 0.98 else 1


def synthetic(n: int, *, pool: int | None) -> list[Occurrence]:
    """``n`` visits, 4 a day, mixed styles and some broken."""
    out = []
    day0 = datetime(2025, 1, 6, tzinfo=TZ)
    for i in range(n):
        start = day0 + timedelta(days=i // 4, hours=9 + 2 * (i % 4))
        k = i % pool if pool else i
        mobile = f"079{k % 100:02d} {100000 + k:06d}"
        style = i % 5
        if style == 0:
            desc = (
                f"Address: {i} Larch Close, Matlock\nPostcode: DE4 3LT\nTel: {mobile}\n"
                "Return: office 16:30"
            )
        elif style == 1:
            desc = (
                f"Mum says ring {mobile} when outside. {i} Mill Lane de43lt. "
                "kids home from school 3.15, going straight home after"
            )
        elif style == 2:
            desc = (
                f"<p>Who: Family{i}</p><p>Mob:&nbsp;{mobile}</p><p>Postcode: DE4 3CT</p>"
                "<p>back at base 4pm</p>"
            )
        elif style == 3:
            desc = f"Tel: 07700 900{i % 1000:03d}\nsee Mosaic {4400000 + i}"
        else:
            desc = (
                "Microsoft Teams meeting\nMeeting ID: 391 442 875 113\nPasscode: aB3cD4\n"
                f"Contact: {mobile}"
            )
        out.append(
            Occurrence(
                uid=f"syn-{i}",
                start=start,
                end=start + timedelta(hours=1),
                summary=("HV", "Home visit Patel", f"Visit: Family{i}", "HV -", "Smith")[style],
                location=f"{i} Acacia Avenue, Derby DE22 3NE" if style == 4 else "",
                description=desc,
                categories=("Home Visit",) if style == 4 else (),
            )
        )
    return out


def _run(occs: list[Occurrence], window: Window, *, cold: bool) -> tuple[float, int]:
    if cold:
        extract_mod.clear_memo()
    t0 = time.perf_counter()
    result = check(occs, calendar="bench", tz=TZ, window=window, config=RulesConfig())
    elapsed = time.perf_counter() - t0
    assert len(result.visits) == len(occs)
    return len(occs) / elapsed, len(result.findings)


def speed(n: int, runs: int, pool: int | None) -> None:
    occs = synthetic(n, pool=pool)
    window = Window(datetime(2025, 1, 1, tzinfo=TZ), datetime(2040, 1, 1, tzinfo=TZ))
    label = f"pool of {pool} numbers" if pool else "all entries distinct"
    for cold in (True, False):
        rates = []
        for _ in range(runs):
            rate, findings = _run(occs, window, cold=cold)
            rates.append(rate)
        kind = "cold (memo cleared)" if cold else "warm (re-check, as every poll)"
        print(
            f"check(): {n} visits, {label}, {kind}: median {statistics.median(rates):,.0f}"
            f" visits/s over {runs} runs (min {min(rates):,.0f}, max {max(rates):,.0f});"
            f" {findings} findings"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--repeat-numbers", action="store_true")
    ap.add_argument("-n", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    rc = accuracy()
    if args.speed:
        speed(args.n, args.runs, 500 if args.repeat_numbers else None)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
