"""The command line. Every SyncdError becomes one line on stderr and exit status 2 here,
and nowhere else; no traceback ever reaches the user."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, NoReturn

from syncd import __version__
from syncd.config import Config, default_config, load_config
from syncd.errors import ConfigError, InputError, SyncdError

DEFAULT_CONFIG = "/etc/syncd/syncd.toml"
log = logging.getLogger("syncd")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints usage plus a message; one line naming the problem is clearer.
        self.exit(2, f"syncd: error: {message} (see 'syncd --help')\n")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="syncd", description="Lone-worker visit tracking from staff calendars.")
    p.add_argument("--version", action="version", version=f"syncd {__version__}")
    p.add_argument(
        "--log-level",
        default=os.environ.get("SYNCD_LOG_LEVEL", "INFO"),
        help="DEBUG, INFO, WARNING or ERROR",
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser(
        "check", help="check ICS exports offline (each file is one worker's calendar)"
    )
    c.add_argument("files", nargs="+", type=Path, metavar="FILE")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.add_argument(
        "--from", dest="first", type=_date, metavar="DATE", help="first day checked (default today)"
    )
    c.add_argument(
        "--to",
        dest="stop",
        type=_date,
        metavar="DATE",
        help="day after the last day checked (default 28 days on)",
    )
    c.add_argument("--config", type=Path, help="config file (optional; defaults apply without one)")

    for name, text in (
        ("check-config", "validate the config and check that every secret can be read"),
        ("once", "run one sync cycle and exit"),
        ("run", "run the service (systemd Type=notify)"),
        ("status", "show each calendar's sync state and open findings"),
    ):
        s = sub.add_parser(name, help=text)
        s.add_argument(
            "--config", type=Path, default=Path(os.environ.get("SYNCD_CONFIG", DEFAULT_CONFIG))
        )

    d = sub.add_parser("demo", help="run the main job on an embedded CalDAV server and mail sink")
    d.add_argument("--keep", type=Path, help="keep the demo's files in this folder")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from syncd.app.logs import setup

    try:
        setup(args.log_level)
    except ValueError:
        print(f"syncd: error: --log-level: unknown level {args.log_level!r}", file=sys.stderr)
        return 2
    try:
        handler = {
            "check": cmd_check,
            "check-config": cmd_check_config,
            "once": cmd_once,
            "run": cmd_run,
            "status": cmd_status,
            "demo": cmd_demo,
        }[args.command]
        status = handler(args)
        sys.stdout.flush()  # here, so a reader that left is seen inside this try
        return status
    except SyncdError as exc:
        print(f"syncd: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `syncd check ... | head`: the reader left. Point stdout at /dev/null so the
        # interpreter's final flush does not raise again, and exit as a SIGPIPE'd tool would.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as exc:  # a bug: still one line, with the detail at DEBUG
        log.debug("internal error", exc_info=True)
        print(
            f"syncd: internal error: {type(exc).__name__}: {exc} (run with --log-level DEBUG for details)",
            file=sys.stderr,
        )
        return 3


# --- syncd check ----------------------------------------------------------------------
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


# --- daemon commands ------------------------------------------------------------------
def _engine(cfg: Config) -> Any:
    from syncd.config import build_notifier
    from syncd.store import open_store
    from syncd.track.engine import Engine

    return Engine(cfg, open_store(cfg.database), build_notifier(cfg))


def cmd_check_config(args: argparse.Namespace) -> int:
    from syncd.secrets import SecretRef

    cfg = load_config(args.config)
    problems = 0
    refs: list[tuple[str, SecretRef]] = []
    for i in range(len(cfg.sources)):
        opts = cfg.source_options(i)
        for name in type(opts).model_fields:
            value = getattr(opts, name)
            if isinstance(value, SecretRef):
                refs.append((f"sources[{i}].{name}", value))
    if cfg.smtp is not None and cfg.smtp.password is not None:
        refs.append(("smtp.password", cfg.smtp.password))
    if cfg.webhook is not None:
        refs.append(("webhook.client_state", cfg.webhook.client_state))
    for where, ref in refs:
        try:
            ref.get()
            print(f"ok: {where} ({ref.describe()})")
        except ConfigError as exc:
            print(f"syncd: error: {where}: {exc}", file=sys.stderr)
            problems += 1
    problems += _check_database(cfg.database)
    staff = sum(len(t.staff) for t in cfg.teams)
    if cfg.smtp is None:
        print(
            "warning: no [smtp] table: findings and blind spots will not reach anyone",
            file=sys.stderr,
        )
    print(
        f"{args.config}: {len(cfg.sources)} source(s), {len(cfg.teams)} team(s), {staff} calendar(s)"
    )
    return 2 if problems else 0


def _check_database(url: str) -> int:
    """1 (and one line on stderr) when ``database`` is not a URL syncd can open."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        # Builds the engine and imports its driver; connects to nothing, creates no file.
        create_engine(url).dispose()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        print(f"syncd: error: database: not a usable database URL ({exc})", file=sys.stderr)
        return 1
    except ImportError as exc:
        print(f"syncd: error: database: its driver is not installed ({exc.name})", file=sys.stderr)
        return 1
    print("ok: database URL")
    return 0


def cmd_once(args: argparse.Namespace) -> int:
    from syncd.app.daemon import utcnow

    engine = _engine(load_config(args.config))
    try:
        report = engine.cycle(utcnow())
    finally:
        engine.close()
    print(
        f"{report.calendars} calendars, {report.failed} unreadable, {report.visits} visits checked, "
        f"{report.new_findings} new findings, {report.sent} messages sent"
    )
    return 1 if report.failed or report.send_failures else 0


def cmd_run(args: argparse.Namespace) -> int:
    from syncd.app.daemon import Daemon

    cfg = load_config(args.config)
    daemon = Daemon(_engine(cfg), interval=cfg.poll_interval)
    daemon.install_signal_handlers()
    daemon.run()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from syncd.app.daemon import utcnow
    from syncd.domain.tracking import window_for
    from syncd.store import open_store

    cfg = load_config(args.config)
    store = open_store(cfg.database)
    window = window_for(utcnow(), cfg.tz, cfg.lookahead_days)
    open_by_cal: dict[str, int] = {}
    for f in store.all_open_findings(window.start, window.end):
        open_by_cal[f.calendar] = open_by_cal.get(f.calendar, 0) + 1
    states = {s.key: s for s in store.calendars()}
    print(f"{'CALENDAR':<20} {'STATE':<10} {'LAST READ (UTC)':<20} {'OPEN FINDINGS':>13}")
    for team in cfg.teams:
        for staff in team.staff:
            st = states.get(staff.id)
            if st is None:
                state, last = "never read", "-"
            else:
                state = (
                    "BLIND"
                    if st.blind_since
                    else (
                        "held-empty"
                        if st.empty_since
                        else ("ok" if st.last_ok_at else "never read")
                    )
                )
                last = st.last_ok_at.strftime("%Y-%m-%d %H:%M") if st.last_ok_at else "-"
            print(f"{staff.id:<20} {state:<10} {last:<20} {open_by_cal.get(staff.id, 0):>13}")
    pending = store.pending_count()
    if pending:
        print(f"\n{pending} notification(s) waiting to be sent")
    store.close()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from syncd.app.demo import run_demo

    return run_demo(keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
