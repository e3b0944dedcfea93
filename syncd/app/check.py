"""``syncd check``: an offline lint of ICS exports, one file per worker's calendar."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from syncd.config import Config, default_config, load_config
from syncd.errors import ConfigError, InputError


def cmd_check(args: argparse.Namespace) -> int:
    from syncd.domain import rules
    from syncd.domain.model import Finding
    from syncd.domain.tracking import local_day, problem_finding, window_between
    from syncd.parse.ical import DEFAULT_LIMITS, parse_ical

    cfg: Config = load_config(args.config) if args.config else default_config()
    tz = cfg.tz
    from syncd.app.daemon import utcnow

    first = args.first or local_day(utcnow(), tz)
    stop = args.stop or first + timedelta(days=cfg.lookahead_days)
    if stop <= first:
        raise ConfigError("--to must be after --from")
    window = window_between(first, stop, tz)

    findings: list[tuple[Path, Finding]] = []
    visits = 0
    unreadable = 0
    for path in args.files:
        try:
            data = _read_bounded(path, DEFAULT_LIMITS.max_bytes)
            try:
                parsed = parse_ical(data, window=window, tz=tz)
            except InputError as exc:
                raise InputError(f"{path}: {exc}") from None
        except InputError as exc:
            print(f"syncd: error: {exc}", file=sys.stderr)
            unreadable += 1
            continue
        result = rules.check(
            parsed.occurrences, calendar=str(path), tz=tz, window=window, config=cfg.rules
        )
        visits += len(result.visits)
        findings.extend((path, f) for f in result.findings)
        findings.extend((path, problem_finding(str(path), p, window)) for p in parsed.problems)

    findings.sort(key=lambda pf: (str(pf[0]), _sort_start(pf[1].start), pf[1].rule))
    if args.json:
        out: dict[str, Any] = {
            "visits": visits,
            "findings": [
                {
                    "rule": f.rule,
                    "file": str(path),
                    "uid": f.uid,
                    "summary": f.summary,
                    "start": f.start.isoformat(),
                    "message": f.message,
                }
                for path, f in findings
            ],
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        _print_table(
            findings,
            visits,
            window_desc=f"{first} to {stop - timedelta(days=1)}",
            unreadable=unreadable,
        )
    if unreadable:
        return 2
    return 1 if findings else 0


def _read_bounded(path: Path, limit: int) -> bytes:
    """Read at most ``limit`` bytes: /dev/zero or a runaway export must not eat the machine."""
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > limit:
        raise InputError(f"{path}: larger than {limit // (1024 * 1024)} MiB; not a calendar export")
    return data


def _sort_start(value: Any) -> str:
    from datetime import UTC, datetime

    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)


def _print_table(
    findings: Sequence[tuple[Path, Any]], visits: int, window_desc: str, unreadable: int = 0
) -> None:
    from syncd.notify.render import when

    # Never reassure about what could not be read: completeness is claimed only for files read.
    blind = (
        f" {unreadable} file(s) could not be read (see above): nothing is known about them."
        if unreadable
        else ""
    )
    if not findings:
        done = "every entry has the required details" if visits else "no visit entries found"
        read = "in the file(s) read" if unreadable else ""
        print(
            f"{visits} visit(s) checked ({window_desc}): {done}{' ' + read if read else ''}.{blind}"
        )
        return
    rows = [("WHEN", "FILE", "RULE", "ENTRY", "WHAT TO FIX")]
    for path, f in findings:
        summary = f.summary if len(f.summary) <= 30 else f.summary[:29] + "…"
        rows.append((when(f.start.isoformat()), path.name, f.rule, summary, f.message))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4])
    print(f"\n{len(findings)} finding(s) in {visits} visit(s) checked ({window_desc}).{blind}")
