"""Sync bench: CalDavSource vs a bare caldav sync-token loop vs vdirsyncer, on local Radicale.

    /work/venv/bin/python bench/sync_bench.py --calendars 500 --events 10

Seeds N staff calendars x M visits into Radicale's storage folder (not measured), then
measures, each in its own child process so that peak RSS is that client's alone:

* ours: CalDavSource.sync over every locator with ThreadPoolExecutor(4), as the engine does;
* bare: caldav's get_objects_by_sync_token(load_objects=True) per calendar, 1 and 4 threads;
* vdirsyncer: its CLI syncing caldav -> a local filesystem folder.

Cycles: the first full sync, no-change cycles (median of --runs), and cycles after 1% of
the events changed (median of --runs; the changes are PUT by this parent process between
cycles, not timed). Only ratios from one run count: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

USER, PASSWORD = "bench", "bench-pw"
WINDOW_START = datetime(2025, 3, 10, tzinfo=UTC)


def visit_ics(cal: int, ev: int, version: int = 0) -> str:
    start = WINDOW_START + timedelta(days=ev % 20, hours=9 + (ev % 7))
    stamp = start.strftime("%Y%m%dT%H%M%SZ")
    end = (start + timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//syncd bench//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:c{cal}-e{ev}@bench\r\nDTSTAMP:20250101T000000Z\r\n"
        f"DTSTART:{stamp}\r\nDTEND:{end}\r\n"
        f"SUMMARY:HV Family {cal}-{ev} v{version}\r\n"
        f"LOCATION:{ev} High Street\\, Derby DE1 1AA\r\n"
        "DESCRIPTION:Tel: 01332 123456\\nReturn: office 4.30pm\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def locator(cal: int) -> str:
    return f"{USER}/staff{cal:04d}/"


def seed(storage: Path, calendars: int, events: int) -> None:
    """Write Radicale's storage layout directly: much faster than 5000 PUTs."""
    root = storage / "collections" / "collection-root" / USER
    for c in range(calendars):
        folder = root / f"staff{c:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".Radicale.props").write_text(
            json.dumps({"tag": "VCALENDAR", "D:displayname": f"staff{c:04d}"})
        )
        for e in range(events):
            (folder / f"c{c}-e{e}.ics").write_text(visit_ics(c, e), newline="")


# --- workers (child processes) -----------------------------------------------------------------


def worker_ours(url: str, calendars: int, threads: int) -> Callable[[], dict[str, Any]]:
    from syncd.secrets import SecretRef
    from syncd.sources.base import Window
    from syncd.sources.caldav import CalDavOptions, CalDavSource

    src = CalDavSource(
        "bench",
        CalDavOptions(url=url, username=USER, password=SecretRef(env="UNUSED")),
        lambda _f: PASSWORD,
    )
    window = Window(WINDOW_START, WINDOW_START + timedelta(days=28))
    locs = [locator(c) for c in range(calendars)]
    store: dict[str, dict[str, tuple[str, str]]] = {loc: {} for loc in locs}
    states: dict[str, str | None] = dict.fromkeys(locs)
    pool = ThreadPoolExecutor(threads)

    def one(loc: str) -> tuple[int, int, int]:
        items = store[loc]
        cs = src.sync(loc, states[loc], {h: e for h, (e, _) in items.items()}, window)
        for h in cs.deletes:
            items.pop(h, None)
        for i in cs.upserts:
            items[i.href] = (i.etag, i.data)
        states[loc] = cs.state
        return cs.requests, len(cs.upserts), len(cs.deletes)

    def cycle() -> dict[str, Any]:
        t = time.perf_counter()
        results = list(pool.map(one, locs))
        return {
            "seconds": time.perf_counter() - t,
            "requests": sum(r[0] for r in results),
            "upserts": sum(r[1] for r in results),
            "deletes": sum(r[2] for r in results),
        }

    return cycle


def worker_daemon(url: str, calendars: int, threads: int) -> Callable[[], dict[str, Any]]:
    """The whole daemon cycle: sync, SQLite store, parse + check, outbox (no mail server)."""
    import os
    import tempfile

    from syncd.config import parse_config
    from syncd.notify.memory import MemoryNotifier
    from syncd.store import open_store
    from syncd.track.engine import Engine

    os.environ["SYNCD_BENCH_PW"] = PASSWORD
    tmp = tempfile.mkdtemp(prefix="syncd-bench-")
    cfg = parse_config(
        {
            "database": f"sqlite:///{tmp}/state.db",
            "concurrency": threads,
            "notify": {"morning_report": None},
            "sources": [
                {
                    "name": "dav",
                    "kind": "caldav",
                    "url": url,
                    "username": USER,
                    "password": {"env": "SYNCD_BENCH_PW"},
                }
            ],
            "teams": [
                {
                    "name": "Bench",
                    "monitors": ["duty@council.example"],
                    "staff": [
                        {
                            "id": f"s{c}",
                            "name": f"Worker {c}",
                            "calendar": {"source": "dav", "locator": locator(c)},
                        }
                        for c in range(calendars)
                    ],
                }
            ],
        }
    )
    engine = Engine(cfg, open_store(cfg.database), MemoryNotifier())
    now = [WINDOW_START + timedelta(hours=7)]

    def cycle() -> dict[str, Any]:
        now[0] += timedelta(minutes=1)
        t = time.perf_counter()
        rep = engine.cycle(now[0])
        return {
            "seconds": time.perf_counter() - t,
            "requests": rep.requests,
            "upserts": rep.changed,
            "visits": rep.visits,
        }

    return cycle


def worker_bare(url: str, calendars: int, threads: int) -> Callable[[], dict[str, Any]]:
    from caldav.collection import Calendar
    from caldav.davclient import DAVClient
    from caldav.lib import error

    local = threading.local()
    counter = [0]
    lock = threading.Lock()

    def client() -> Any:
        c = getattr(local, "client", None)
        if c is None:
            c = DAVClient(url=url, username=USER, password=PASSWORD, enable_rfc6764=False)
            c.session.trust_env = False
            inner = c.session.request

            def counted(*a: Any, **kw: Any) -> Any:
                with lock:
                    counter[0] += 1
                return inner(*a, **kw)

            c.session.request = counted
            local.client = c
        return c

    tokens: dict[int, Any] = dict.fromkeys(range(calendars))
    data: dict[int, dict[str, str]] = {c: {} for c in range(calendars)}
    pool = ThreadPoolExecutor(threads)

    def one(c: int) -> int:
        cal = Calendar(client=client(), url=url + locator(c))
        objs = cal.get_objects_by_sync_token(tokens[c], load_objects=True)
        n = 0
        for o in objs:
            try:
                data[c][str(o.url)] = o.data
                n += 1
            except error.NotFoundError:
                pass
        for u in objs.deleted_urls:
            data[c].pop(str(u), None)
        tokens[c] = objs.sync_token
        return n

    def cycle() -> dict[str, Any]:
        before = counter[0]
        t = time.perf_counter()
        changed = sum(pool.map(one, range(calendars)))
        return {
            "seconds": time.perf_counter() - t,
            "requests": counter[0] - before,
            "upserts": changed,
        }

    return cycle


def worker_main(kind: str, url: str, calendars: int, threads: int) -> None:
    make = {"ours": worker_ours, "daemon": worker_daemon, "bare": worker_bare}[kind]
    cycle = make(url, calendars, threads)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "cycle":
            out: dict[str, Any] = cycle()
        elif cmd == "rss":
            out = {"maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        else:
            return
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


class Worker:
    def __init__(self, kind: str, url: str, calendars: int, threads: int):
        self.proc = subprocess.Popen(
            [
                *(sys.executable, __file__, "--worker", kind, "--url", url),
                *("--calendars", str(calendars), "--threads", str(threads)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, cmd: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker died (exit {self.proc.wait()})")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


# --- parent ----------------------------------------------------------------------------------


class Changer:
    """PUTs new versions of random events between cycles (not timed)."""

    def __init__(self, url: str, calendars: int, events: int, seed: int = 1):
        from caldav.davclient import DAVClient

        self.client = DAVClient(url=url, username=USER, password=PASSWORD, enable_rfc6764=False)
        self.client.session.trust_env = False
        self.url, self.calendars, self.events = url, calendars, events
        self.rng = random.Random(seed)
        self.version = 0

    def change(self, fraction: float) -> int:
        total = self.calendars * self.events
        n = max(1, round(total * fraction))
        self.version += 1
        for k in self.rng.sample(range(total), n):
            c, e = divmod(k, self.events)
            r = self.client.put(
                f"{self.url}{locator(c)}c{c}-e{e}.ics",
                visit_ics(c, e, self.version),
                {"Content-Type": "text/calendar"},
            )
            assert r.status in (201, 204), r.status
        return n


def run_clients(url: str, args: argparse.Namespace, changer: Changer) -> dict[str, Any]:
    """All clients side by side, cycles interleaved so machine noise hits them alike."""
    # Radicale builds its item cache on first read: pay that once, untimed, for everyone.
    warm = Worker("bare", url, args.calendars, 4)
    warm.ask("cycle")
    warm.close()
    specs = {
        "ours_4_threads": ("ours", 4),
        "daemon_cycle_4_threads": ("daemon", 4),
        "bare_caldav_1_thread": ("bare", 1),
        "bare_caldav_4_threads": ("bare", 4),
    }
    workers = {name: Worker(kind, url, args.calendars, t) for name, (kind, t) in specs.items()}
    try:
        full = {name: w.ask("cycle") for name, w in workers.items()}
        idle: dict[str, list[dict[str, Any]]] = {name: [] for name in workers}
        changed: dict[str, list[dict[str, Any]]] = {name: [] for name in workers}
        for _ in range(args.runs):
            for name, w in workers.items():
                idle[name].append(w.ask("cycle"))
        for _ in range(args.runs):
            n = changer.change(0.01)  # the same changes, seen by every client
            for name, w in workers.items():
                r = w.ask("cycle")
                r["changed_events"] = n
                changed[name].append(r)
                w.ask("cycle")  # back to quiet, so the next round sees only its own 1%
        rss = {name: w.ask("rss")["maxrss_mb"] for name, w in workers.items()}
    finally:
        for w in workers.values():
            w.close()
    return {
        name: {
            "full": full[name],
            "nochange": _median(idle[name]),
            "changed": _median(changed[name]),
            "maxrss_mb": rss[name],
        }
        for name in workers
    }


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(runs[len(runs) // 2])
    out["seconds"] = statistics.median(r["seconds"] for r in runs)
    out["all_seconds"] = [round(r["seconds"], 3) for r in runs]
    return out


_TIMED = """
import json, resource, subprocess, sys, time
t = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(json.dumps([time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))
"""


def run_vdirsyncer(
    url: str, work: Path, args: argparse.Namespace, changer: Changer
) -> dict[str, Any] | None:
    exe = Path(sys.executable).parent / "vdirsyncer"
    if not exe.exists():
        return None
    (work / "vds-local").mkdir()
    config = work / "vdirsyncer.conf"
    config.write_text(
        f'[general]\nstatus_path = "{work / "vds-status"}/"\n\n'
        '[pair bench]\na = "remote"\nb = "local"\ncollections = ["from a"]\n'
        'conflict_resolution = "a wins"\n\n'
        f'[storage remote]\ntype = "caldav"\nurl = "{url}{USER}/"\n'
        f'username = "{USER}"\npassword = "{PASSWORD}"\nread_only = true\n\n'
        f'[storage local]\ntype = "filesystem"\npath = "{work / "vds-local"}/"\n'
        'fileext = ".ics"\n'
    )
    base = [str(exe), "-v", "ERROR", "-c", str(config)]

    rss: list[float] = []

    def timed(*cmd: str, stdin: str = "") -> float:
        # Through a small wrapper so that RUSAGE_CHILDREN is vdirsyncer's alone.
        out = subprocess.run(
            [sys.executable, "-c", _TIMED, *base, *cmd],
            input=stdin,
            text=True,
            check=True,
            capture_output=True,
        )
        seconds, maxrss_kb = json.loads(out.stdout.strip().splitlines()[-1])
        rss.append(maxrss_kb / 1024)
        return float(seconds)

    discover = timed("discover", "bench", stdin="y\n" * (args.calendars + 10))
    full = timed("sync")
    idle = [timed("sync") for _ in range(args.runs)]
    changed = []
    for _ in range(args.runs):
        changer.change(0.01)
        changed.append(timed("sync"))
    return {
        "discover_seconds": discover,
        "full": {"seconds": full},
        "nochange": {"seconds": statistics.median(idle), "all_seconds": idle},
        "changed": {"seconds": statistics.median(changed), "all_seconds": changed},
        "maxrss_mb": max(rss),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--calendars", type=int, default=500)
    p.add_argument("--events", type=int, default=10)
    p.add_argument("--runs", type=int, default=3, help="no-change and 1%% cycles per client")
    p.add_argument("--no-vdirsyncer", action="store_true")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--worker", choices=["ours", "daemon", "bare"], help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker_main(args.worker, args.url, args.calendars, args.threads)
        return

    from syncd.app.devserver import start_radicale

    work = Path(tempfile.mkdtemp(prefix="syncd-bench-"))
    try:
        t = time.perf_counter()
        seed(work / "radicale", args.calendars, args.events)
        print(f"seeded {args.calendars}x{args.events} in {time.perf_counter() - t:.1f}s")
        with start_radicale(work / "radicale", {USER: PASSWORD}) as server:
            changer = Changer(server.url, args.calendars, args.events)
            results: dict[str, Any] = {
                "calendars": args.calendars,
                "events": args.events,
                "runs": args.runs,
            }
            results.update(run_clients(server.url, args, changer))
            if not args.no_vdirsyncer:
                results["vdirsyncer"] = run_vdirsyncer(server.url, work, args, changer)
        report(results)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(r: dict[str, Any]) -> None:
    n = r["calendars"]
    rows = [
        k
        for k in (
            "ours_4_threads",
            "daemon_cycle_4_threads",
            "bare_caldav_1_thread",
            "bare_caldav_4_threads",
        )
        if k in r
    ]
    print(f"\n{n} calendars x {r['events']} events, medians of {r['runs']} runs\n")
    print(
        f"{'client':24} {'full s':>8} {'no-change s':>12} {'1% s':>8} {'req/cycle':>10} {'RSS MB':>8}"
    )
    for k in rows:
        x = r[k]
        print(
            f"{k:24} {x['full']['seconds']:8.2f} {x['nochange']['seconds']:12.3f} "
            f"{x['changed']['seconds']:8.3f} "
            f"{x['full']['requests']}/{x['nochange']['requests']}/{x['changed']['requests']:<4}"
            f" {x['maxrss_mb']:8.1f}"
        )
    v = r.get("vdirsyncer")
    if v:
        print(
            f"{'vdirsyncer (CLI)':24} {v['full']['seconds']:8.2f} {v['nochange']['seconds']:12.3f} "
            f"{v['changed']['seconds']:8.3f} {'n/a':>10} {v['maxrss_mb']:8.1f}"
        )
    ours, bare4 = r["ours_4_threads"], r["bare_caldav_4_threads"]
    ratio = ours["nochange"]["seconds"] / bare4["nochange"]["seconds"]
    print("\nreq/cycle = full/no-change/1% cycle")
    print(
        f"targets: no-change requests {ours['nochange']['requests']} == {n} calendars: "
        f"{'OK' if ours['nochange']['requests'] == n else 'FAIL'}"
    )
    print(
        f"         no-change time ours/bare(4 threads) = {ratio:.2f} <= 1.2: "
        f"{'OK' if ratio <= 1.2 else 'FAIL'}"
    )
    print(
        f"         peak RSS {ours['maxrss_mb']:.1f} MB <= 150: "
        f"{'OK' if ours['maxrss_mb'] <= 150 else 'FAIL'}"
    )
    d = r.get("daemon_cycle_4_threads")
    if d:
        dr = d["nochange"]["seconds"] / bare4["nochange"]["seconds"]
        print(
            f"  daemon: no-change cycle requests {d['nochange']['requests']}, "
            f"time daemon/bare(4 threads) = {dr:.2f} <= 1.2: {'OK' if dr <= 1.2 else 'FAIL'}; "
            f"peak RSS {d['maxrss_mb']:.1f} MB <= 150: {'OK' if d['maxrss_mb'] <= 150 else 'FAIL'}"
        )


if __name__ == "__main__":
    main()
