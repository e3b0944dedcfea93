"""Throughput of parse_ical + rules.check on realistic home-visit calendars.

    /work/venv/bin/python bench/parse_check.py [--events 10000] [--runs 5] [--profile]

Generates N visit VEVENTs as Outlook writes them (Windows TZID "GMT Standard Time" with
its VTIMEZONE, a few weekly series, some entries missing details), spread over calendars
of 10-20 entries, in two layouts:

* objects: one VCALENDAR per entry, as CalDAV stores them (each parsed on its own);
* file:    one ICS file per calendar (a published feed or an export).

Prints the median of ``--runs`` runs in events per second for parse alone, parse + check
as the daemon's first cycle does it (every memo of ``syncd.domain.extract`` cleared before every run)
and parse + recheck (memo warm: later cycles over the same entries).
Target (issue): >= 20,000 events/s for parse + check.

Results 2026-11-25, shared 2-core box, medians of 5 runs, 10,000 events (objects / file):

    --recurring 0.03 (default)   before      after
      parse                    12.8k/14.7k  25.2k/29.4k
      parse + check (first)     7.5k/ 8.3k  11.0k/12.0k
      parse + recheck          11.5k/13.3k  21.4k/24.8k
    --recurring 0
      parse                    23.0k/28.2k  28.9k/34.9k
      parse + check (first)    10.6k/12.1k  11.6k/13.0k
      parse + recheck          20.0k/24.3k  24.6k/28.8k

"before" is commit 8bb25f9 (series through icalendar + recurring-ical-events), "after"
the fast lane's own series expansion (syncd/parse/series.py). The first check alone costs
about 50 us per entry (extract), so parse + first check stays below 20k whatever the parser.
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from syncd.domain import rules
from syncd.domain.extract import clear_memo
from syncd.parse.ical import parse_ical
from syncd.sources.base import Window

LONDON = ZoneInfo("Europe/London")
WINDOW = Window(datetime(2025, 10, 13, tzinfo=LONDON), datetime(2025, 11, 10, tzinfo=LONDON))
VTIMEZONE = """BEGIN:VTIMEZONE\r
TZID:GMT Standard Time\r
BEGIN:STANDARD\r
DTSTART:16010101T020000\r
TZOFFSETFROM:+0100\r
TZOFFSETTO:+0000\r
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10\r
END:STANDARD\r
BEGIN:DAYLIGHT\r
DTSTART:16010101T010000\r
TZOFFSETFROM:+0000\r
TZOFFSETTO:+0100\r
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3\r
END:DAYLIGHT\r
END:VTIMEZONE\r
"""
HEAD = "BEGIN:VCALENDAR\r\nPRODID:Microsoft Exchange Server 2010\r\nVERSION:2.0\r\n" + VTIMEZONE
TAIL = "END:VCALENDAR\r\n"
STREETS = ["Acacia Avenue", "Mill Lane", "Church Street", "Victoria Road", "Park Terrace"]
TOWNS = [("Leeds", "LS6 2AB"), ("Derby", "DE1 1AA"), ("Hull", "HU1 3XY"), ("York", "YO1 7HH")]


def vevent(rng: random.Random, i: int, recurring: float = 0.03) -> str:
    day = WINDOW.start + timedelta(days=rng.randrange(28))
    start = day.replace(hour=rng.choice([9, 10, 11, 13, 14, 15]), minute=rng.choice([0, 30]))
    end = start + timedelta(minutes=rng.choice([45, 60, 90]))
    town, postcode = rng.choice(TOWNS)
    lines = [
        "BEGIN:VEVENT",
        f"UID:040000008200E00074C5B7101A82E00800000000{i:012d}",
        "DTSTAMP:20251001T080000Z",
        f"DTSTART;TZID=GMT Standard Time:{start:%Y%m%dT%H%M%S}",
        f"SUMMARY;LANGUAGE=en-GB:Home visit - Family {i}",
        "CLASS:PUBLIC",
        "PRIORITY:5",
        "TRANSP:OPAQUE",
        "STATUS:CONFIRMED",
        "SEQUENCE:0",
        "X-MICROSOFT-CDO-BUSYSTATUS:BUSY",
        "X-MICROSOFT-CDO-IMPORTANCE:1",
        "X-MICROSOFT-DISALLOW-COUNTER:FALSE",
    ]
    if rng.random() > 0.05:
        lines.append(f"DTEND;TZID=GMT Standard Time:{end:%Y%m%dT%H%M%S}")
    if rng.random() > 0.1:
        lines.append(f"LOCATION:{rng.randrange(1, 200)} {rng.choice(STREETS)}\\, {town} {postcode}")
    if rng.random() > 0.1:
        lines.append(
            "DESCRIPTION:Contact: 0113 496 0"
            f"{rng.randrange(1000):03d}\\nReturn to office by 17:00\\nPurpose: statutory visit"
        )
    if rng.random() < 0.3:
        lines.append("CATEGORIES:Home Visit")
    if rng.random() < recurring:
        lines.append(
            "RRULE:FREQ=WEEKLY;COUNT=10;BYDAY="
            + ["MO", "TU", "WE", "TH", "FR"][start.weekday() % 5]
        )
    lines.append("END:VEVENT")
    return "\r\n".join(lines) + "\r\n"


def calendars(n: int, seed: int = 1, recurring: float = 0.03) -> list[list[str]]:
    rng = random.Random(seed)
    out: list[list[str]] = []
    i = 0
    while i < n:
        size = min(rng.randrange(10, 21), n - i)
        out.append([vevent(rng, i + k, recurring) for k in range(size)])
        i += size
    return out


def run(
    cals: list[list[str]], layout: str, with_check: bool, warm: bool = False
) -> tuple[float, int, int]:
    """One timed pass. Unless ``warm``, the check starts as the daemon's first cycle does,
    with nothing memoised by the extractor (``extract.clear_memo``) from an earlier pass."""
    config = rules.RulesConfig()
    texts = (
        [[HEAD + ev + TAIL for ev in cal] for cal in cals]
        if layout == "objects"
        else [[HEAD + "".join(cal) + TAIL] for cal in cals]
    )
    if not warm:
        clear_memo()
    t0 = time.perf_counter()
    occurrences = findings = 0
    for n, cal in enumerate(texts):
        occ = []
        for text in cal:
            occ.extend(parse_ical(text, window=WINDOW, tz=LONDON).occurrences)
        occurrences += len(occ)
        if with_check:
            result = rules.check(occ, calendar=f"c{n}", tz=LONDON, window=WINDOW, config=config)
            findings += len(result.findings)
    return time.perf_counter() - t0, occurrences, findings


def median_rate(
    fn: Callable[[], tuple[float, int, int]], events: int, runs: int
) -> tuple[float, int, int]:
    results = [fn() for _ in range(runs)]
    return events / statistics.median(r[0] for r in results), results[0][1], results[0][2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--recurring", type=float, default=0.03, help="share of weekly series")
    parser.add_argument("--profile", action="store_true", help="cProfile one objects run")
    args = parser.parse_args()
    cals = calendars(args.events, recurring=args.recurring)
    if args.profile:
        import cProfile
        import pstats

        cProfile.runctx(
            "run(cals, 'objects', True)",
            globals(),
            {"cals": cals, "run": run},
            "/tmp/parse_check.prof",
        )
        pstats.Stats("/tmp/parse_check.prof").sort_stats("tottime").print_stats(25)
        return
    print(
        f"{args.events} visit events ({args.recurring:.0%} weekly series) in {len(cals)} "
        f"calendars, median of {args.runs} runs"
    )
    for layout in ("objects", "file"):
        for label, with_check, warm in (
            ("parse          ", False, False),
            ("parse + check  ", True, False),
            ("parse + recheck", True, True),
        ):
            if warm:
                run(cals, layout, True)  # the daemon's first cycle, untimed
            timed = functools.partial(run, cals, layout, with_check, warm)
            rate, occ, found = median_rate(timed, args.events, args.runs)
            extra = f", {found} findings" if with_check else ""
            print(f"  {layout:7s} {label}: {rate:9,.0f} events/s ({occ} occurrences{extra})")


if __name__ == "__main__":
    main()
