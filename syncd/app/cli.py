"""The command line. Every SyncdError becomes one line on stderr and exit status 2 here,
and nowhere else; no traceback ever reaches the user."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any, NoReturn

from syncd import __version__
from syncd.config import Config, load_config
from syncd.errors import ConfigError, SyncdError

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
    config_help = (
        f"config file (default $SYNCD_CONFIG or {DEFAULT_CONFIG}); "
        "accepted before or after the command"
    )
    p.add_argument("--config", type=Path, help=config_help)
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
    c.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help="config file (optional; the defaults apply without one)",
    )

    daemon_commands: dict[str, argparse.ArgumentParser] = {}
    for name, text in (
        ("check-config", "validate the config and check that every secret can be read"),
        ("once", "run one sync cycle and exit"),
        ("run", "run the service (systemd Type=notify)"),
        ("status", "show each calendar's state; exit 1 if any is blind (--json for tools)"),
        ("findings", "list open findings (incomplete visit entries)"),
    ):
        s = sub.add_parser(name, help=text)
        # SUPPRESS: a --config given before the command is not overwritten by a default here.
        s.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=config_help)
        daemon_commands[name] = s
    daemon_commands["status"].add_argument("--json", action="store_true", help="JSON output")
    daemon_commands["findings"].add_argument("--team", help="only this team's calendars")
    daemon_commands["findings"].add_argument("--json", action="store_true", help="JSON output")

    u = sub.add_parser(
        "systemd-unit", help="print a unit file whose LoadCredential= lines fit the config"
    )
    u.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=config_help)
    i = sub.add_parser("init", help="write the example config and unit file into a folder")
    i.add_argument("folder", type=Path, nargs="?", default=Path("."), help="default: here")

    d = sub.add_parser("demo", help="run the main job on an embedded CalDAV server and mail sink")
    d.add_argument("--keep", type=Path, help="keep the demo's files in this folder")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.config is None and args.command not in ("check", "init", "demo"):
        args.config = Path(os.environ.get("SYNCD_CONFIG", DEFAULT_CONFIG))
    from syncd.app.logs import setup

    try:
        setup(args.log_level)
    except ValueError:
        print(f"syncd: error: --log-level: unknown level {args.log_level!r}", file=sys.stderr)
        return 2
    try:
        handler = {
            "check": _cmd_check,
            "check-config": cmd_check_config,
            "once": cmd_once,
            "run": cmd_run,
            "status": cmd_status,
            "findings": cmd_findings,
            "demo": cmd_demo,
            "systemd-unit": cmd_systemd_unit,
            "init": cmd_init,
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


# --- daemon commands ------------------------------------------------------------------
def _engine(cfg: Config) -> Any:
    from syncd.config import build_notifier
    from syncd.store import open_store
    from syncd.track.engine import Engine

    return Engine(cfg, open_store(cfg.database), build_notifier(cfg))


def _cmd_check(args: argparse.Namespace) -> int:
    from syncd.app.check import cmd_check

    return cmd_check(args)


def cmd_check_config(args: argparse.Namespace) -> int:
    from syncd.app.install import secret_refs

    cfg = load_config(args.config)
    problems = 0
    refs = secret_refs(cfg)
    for where, ref in refs:
        try:
            ref.get()
            print(f"ok: {where} ({ref.describe()})")
        except ConfigError as exc:
            print(f"syncd: error: {where}: {exc}", file=sys.stderr)
            problems += 1
    problems += _check_database(cfg.database)
    if cfg.metrics_file is not None:
        folder = cfg.metrics_file.parent
        if not (folder.is_dir() and os.access(folder, os.W_OK)):
            print(
                f"syncd: error: metrics_file: cannot write into {folder} "
                "(under systemd, add it to ReadWritePaths=; 'syncd systemd-unit' does)",
                file=sys.stderr,
            )
            problems += 1
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


def _sender_lock(cfg: Config) -> Any:
    """The store's one-sender lock (SenderLock), or None for an in-memory store."""
    from syncd.app.lock import sender_lock
    from syncd.store.db import resolve_url

    return sender_lock(resolve_url(cfg.database))


def cmd_once(args: argparse.Namespace) -> int:
    from syncd.app.daemon import release_stale_claims, utcnow

    cfg = load_config(args.config)
    lock = _sender_lock(cfg)
    with lock if lock is not None else contextlib.nullcontext():
        engine = _engine(cfg)
        try:
            if lock is not None:
                release_stale_claims(engine)
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
    lock = _sender_lock(cfg)
    # SQLite: a second daemon is refused here. PostgreSQL: it stands by in Daemon.run.
    if lock is not None and not lock.try_acquire() and not lock.standby:
        raise ConfigError(lock.busy())
    try:
        daemon = Daemon(_engine(cfg), interval=cfg.poll_interval, lock=lock)
        daemon.install_signal_handlers()
        daemon.run()
    finally:
        if lock is not None:
            lock.release()
    return 1 if daemon.lost_lock else 0


def _calendar_state(st: Any) -> str:
    if st is None:
        return "never read"
    if st.blind_since:
        return "BLIND"
    if st.empty_since:
        return "held-empty"
    return "ok" if st.last_ok_at else "never read"


def cmd_status(args: argparse.Namespace) -> int:
    from syncd.app.daemon import utcnow
    from syncd.domain.tracking import window_for
    from syncd.store import open_store

    cfg = load_config(args.config)
    store = open_store(cfg.database)
    try:
        window = window_for(utcnow(), cfg.tz, cfg.lookahead_days)
        open_by_cal: dict[str, int] = {}
        for f in store.all_open_findings(window.start, window.end):
            open_by_cal[f.calendar] = open_by_cal.get(f.calendar, 0) + 1
        states = {s.key: s for s in store.calendars()}
        pending = store.pending_count()
    finally:
        store.close()
    rows: list[dict[str, Any]] = []
    for team in cfg.teams:
        for staff in team.staff:
            st = states.get(staff.id)
            rows.append(
                {
                    "calendar": staff.id,
                    "team": team.name,
                    "state": _calendar_state(st),
                    "last_read": st.last_ok_at.isoformat() if st and st.last_ok_at else None,
                    "failures": st.failures if st else 0,
                    "open_findings": open_by_cal.get(staff.id, 0),
                }
            )
    # Not "all is well" unless every calendar was read: blind or never-read ones fail it.
    unhealthy = sum(1 for r in rows if r["state"] in ("BLIND", "never read"))
    if args.json:
        print(json.dumps({"calendars": rows, "pending_notifications": pending}, indent=2))
    else:
        print(f"{'CALENDAR':<20} {'STATE':<10} {'LAST READ (UTC)':<20} {'OPEN FINDINGS':>13}")
        for r in rows:
            st = states.get(r["calendar"])
            last = st.last_ok_at.strftime("%Y-%m-%d %H:%M") if st and st.last_ok_at else "-"
            print(f"{r['calendar']:<20} {r['state']:<10} {last:<20} {r['open_findings']:>13}")
        if pending:
            print(f"\n{pending} notification(s) waiting to be sent")
        if unhealthy:
            print(f"\n{unhealthy} calendar(s) blind or never read: nobody can see those visits")
    return 1 if unhealthy else 0


def cmd_findings(args: argparse.Namespace) -> int:
    from syncd.app.daemon import utcnow
    from syncd.domain.tracking import window_for
    from syncd.notify.render import when
    from syncd.store import open_store

    cfg = load_config(args.config)
    teams = [t for t in cfg.teams if args.team is None or t.name == args.team]
    if not teams:
        raise ConfigError(f"--team: no team named {args.team!r} in {args.config}")
    staff = {s.id: (t.name, s.name) for t in teams for s in t.staff}
    store = open_store(cfg.database)
    try:
        window = window_for(utcnow(), cfg.tz, cfg.lookahead_days)
        found = [
            f for f in store.all_open_findings(window.start, window.end) if f.calendar in staff
        ]
    finally:
        store.close()
    found.sort(key=lambda f: (f.start_utc, f.calendar, f.rule))
    if args.json:
        out = [
            {
                "calendar": f.calendar,
                "team": staff[f.calendar][0],
                "rule": f.rule,
                "summary": f.summary,
                "start": f.start,
                "message": f.message,
                "first_seen": f.first_seen.isoformat(),
            }
            for f in found
        ]
        print(json.dumps({"findings": out}, indent=2, ensure_ascii=False))
    else:
        for f in found:
            print(f"{when(f.start):<22} {f.calendar:<12} {f.rule:<18} {f.summary}: {f.message}")
        print(f"{len(found)} open finding(s)")
    return 1 if found else 0


def cmd_systemd_unit(args: argparse.Namespace) -> int:
    from syncd.app.install import unit_text

    print(unit_text(load_config(args.config), args.config.resolve()), end="")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from syncd.app.install import write_init

    for path in write_init(args.folder):
        print(f"wrote {path}")
    print(
        "next: edit syncd.toml, then 'syncd check-config --config syncd.toml' and "
        "'syncd systemd-unit --config /etc/syncd/syncd.toml' for the unit that fits it"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import importlib.util

    missing = [m for m in ("radicale", "aiosmtpd") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"syncd demo needs {' and '.join(missing)}: install the demo extra, "
            "pip install 'syncd[demo]'"
        )
    from syncd.app.demo import run_demo

    return run_demo(keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
