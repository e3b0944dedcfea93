"""The service loop: the only place that reads the clock.

Runs a cycle at once, then every ``poll_interval`` seconds with the ``schedule`` library;
tells systemd READY=1 after the first cycle, pings WATCHDOG=1 from the loop, and stops
cleanly on SIGTERM/SIGINT after the cycle in progress.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType

import schedule
import sdnotify

from .engine import Engine

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Daemon:
    def __init__(
        self,
        engine: Engine,
        *,
        interval: int,
        clock: Callable[[], datetime] = utcnow,
        notify: Callable[[str], None] | None = None,
    ):
        self.engine = engine
        self.interval = interval
        self.clock = clock
        self.stop_event = threading.Event()
        self._notify = notify or sdnotify.SystemdNotifier().notify
        self.cycles = 0
        self.failed_cycles = 0

    def run_cycle(self) -> None:
        try:
            self.engine.cycle(self.clock())
            self.cycles += 1
        except Exception:
            # A cycle that dies (disk full, database locked) must not end the service: the
            # next cycle retries, and every failure is logged loudly.
            self.failed_cycles += 1
            log.exception("sync cycle failed; retrying in %ds", self.interval)

    def stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        if signum is not None:
            log.info("received %s; stopping after the current cycle", signal.Signals(signum).name)
        self.stop_event.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self, *, max_cycles: int | None = None) -> None:
        scheduler = schedule.Scheduler()
        scheduler.every(self.interval).seconds.do(self.run_cycle)
        log.info("syncd started: %d calendars, every %ds", len(self.engine.staff), self.interval)
        self.run_cycle()
        self._notify("READY=1")
        self._notify(f"STATUS=watching {len(self.engine.staff)} calendars")
        while not self.stop_event.is_set():
            if max_cycles is not None and self.cycles + self.failed_cycles >= max_cycles:
                break
            scheduler.run_pending()
            self._notify("WATCHDOG=1")
            idle = scheduler.idle_seconds
            self.stop_event.wait(timeout=max(0.0, min(idle if idle is not None else 1.0, 5.0)))
        self._notify("STOPPING=1")
        self.engine.close()
        log.info("syncd stopped")
