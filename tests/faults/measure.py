"""How long 4 CalDAV calendars take to sync behind a fault, as the engine runs them.

    .venv/bin/python -m tests.faults.measure drip     # Radicale behind a 1 byte / 5 s drip
    .venv/bin/python -m tests.faults.measure refused  # a port nobody listens on
    .venv/bin/python -m tests.faults.measure stall    # accepted, never answered

Four calendars, synced 4 at once (the engine's default concurrency), with the source's
default options. Prints the wall time until every sync has ended, or gives up after
``--cap`` seconds (the syncs are left running in daemon threads).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from caldav.davclient import DAVClient

from syncd.app.devserver import start_radicale
from syncd.domain.model import Window
from syncd.errors import SourceError
from syncd.secrets import SecretRef
from syncd.sources.caldav import CalDavOptions, CalDavSource
from tests.faults.proxy import Drip, FaultProxy, Stall, refused_port


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("fault", choices=["drip", "refused", "stall"])
    parser.add_argument("--calendars", type=int, default=4)
    parser.add_argument("--every", type=float, default=5.0, help="drip interval, seconds")
    parser.add_argument("--cap", type=float, default=180.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_radicale(Path(tmp), {"m": "pw"})
        try:
            client = DAVClient(url=server.url, username="m", password="pw", auth_type="basic")
            client.session.trust_env = False
            locators = []
            for _ in range(args.calendars):
                loc = f"m/c-{uuid.uuid4().hex[:8]}/"
                client.mkcalendar(server.url + loc, "")
                locators.append(loc)
            port = int(server.url.rsplit(":", 1)[1].strip("/"))
            with FaultProxy(("127.0.0.1", port)) as proxy:
                if args.fault == "drip":
                    proxy.set(Drip(every=args.every))
                    url = proxy.url + "/"
                elif args.fault == "stall":
                    proxy.set(Stall())
                    url = proxy.url + "/"
                else:
                    url = f"http://127.0.0.1:{refused_port()}/"
                run(url, locators, args.cap)
        finally:
            server.stop()


def run(url: str, locators: list[str], cap: float) -> None:
    src = CalDavSource(
        "measure",
        CalDavOptions(url=url, username="m", password=SecretRef(env="UNUSED")),
        lambda _f: "pw",
    )
    now = datetime.now(UTC)
    window = Window(now, now + timedelta(days=28))
    outcomes: dict[str, str] = {}

    def one(loc: str) -> None:
        t = time.monotonic()
        try:
            src.sync(loc, None, {}, window)
            outcomes[loc] = f"ok after {time.monotonic() - t:.1f} s"
        except SourceError as exc:
            outcomes[loc] = f"{exc} (permanent={exc.permanent}) after {time.monotonic() - t:.1f} s"

    start = time.monotonic()
    done = threading.Event()

    def all_of_them() -> None:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(one, locators))
        done.set()

    threading.Thread(target=all_of_them, daemon=True).start()
    finished = done.wait(cap)
    elapsed = time.monotonic() - start
    for loc in locators:
        print(f"  {loc}: {outcomes.get(loc, 'still running')}")
    if finished:
        print(f"{len(locators)} calendars: {elapsed:.1f} s")
    else:
        print(f"{len(locators)} calendars: NOT finished after {cap:.0f} s")


if __name__ == "__main__":
    main()
