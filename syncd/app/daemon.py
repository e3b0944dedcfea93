"""The service loop: the only place that reads the clock.

Runs a cycle at once, then every ``poll_interval`` seconds with the ``schedule`` library;
tells systemd READY=1 after the first cycle, pings WATCHDOG=1 from the loop, and stops
cleanly on SIGTERM/SIGINT after the cycle in progress.

With ``[webhook]`` configured it also serves the Graph change-notification endpoint
(:mod:`syncd.web.webhook`) in a background thread, keeps the subscriptions up once per cycle
(:mod:`syncd.track.subscriptions`), and runs a partial cycle for the calendars a notification
names as soon as it arrives. Polling carries on whatever happens to the webhook.

With a :class:`~syncd.app.lock.SenderLock` it syncs and sends only while it holds it: a
second daemon on a PostgreSQL store stands by (READY, watchdog pings, no cycles) until the
active one's session ends, and an active one that loses its lock stops.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING

import schedule
import sdnotify

from syncd.app.lock import SenderLock, stand_by
from syncd.errors import ConfigError
from syncd.track.engine import Engine

if TYPE_CHECKING:  # fastapi and uvicorn load only when [webhook] is configured
    from syncd.track.subscriptions import Subscriptions
    from syncd.web.webhook import WebServer, WorkQueue

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def release_stale_claims(engine: Engine) -> None:
    """With the sender lock held no other sender is alive, so any lease on the outbox is a
    dead process's: release it, so its rows go now rather than when the lease runs out."""
    if n := engine.store.release_claims():
        log.warning("re-sending %d notifications a stopped sender had claimed", n)


class Daemon:
    def __init__(
        self,
        engine: Engine,
        *,
        interval: int,
        clock: Callable[[], datetime] = utcnow,
        notify: Callable[[str], None] | None = None,
        lock: SenderLock | None = None,
    ):
        self.engine = engine
        self.lock = lock
        self.lost_lock = False
        self.interval = interval
        self.clock = clock
        self.stop_event = threading.Event()
        self._notify = notify or sdnotify.SystemdNotifier().notify
        self.cycles = 0
        self.failed_cycles = 0
        self.partial_cycles = 0
        self.work: WorkQueue = queue.SimpleQueue()
        self._web: WebServer | None = None
        self._subs: Subscriptions | None = None

    def still_active(self) -> bool:
        """False (and the daemon stopping) once another daemon may be sending instead."""
        if self.lock is None or self.lock.held():
            return True
        if not self.lost_lock:
            log.error(
                "lost the sender lock on the store (connection gone); stopping, so that only "
                "one syncd sends. systemd restarts this one, as a standby if another is active"
            )
        self.lost_lock = True
        self.stop()
        return False

    def run_cycle(self) -> None:
        if not self.still_active():
            return
        try:
            now = self.clock()
            self.engine.cycle(now)
            self.cycles += 1
        except Exception as exc:
            # A cycle that dies (disk full, database locked) must not end the service: the
            # next cycle retries, and every failure is logged loudly. The traceback goes to
            # DEBUG only: an exception's text may quote calendar data.
            self.failed_cycles += 1
            log.error("sync cycle failed (%s); retrying in %ds", type(exc).__name__, self.interval)
            log.debug("traceback", exc_info=True)
            return
        self._maintain_subscriptions(now)

    def stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        if signum is not None:
            log.info("received %s; stopping after the current cycle", signal.Signals(signum).name)
        self.stop_event.set()
        self.work.put(None)  # wake the loop; SimpleQueue.put is safe in a signal handler

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self, *, max_cycles: int | None = None) -> None:
        scheduler = schedule.Scheduler()
        scheduler.every(self.interval).seconds.do(self.run_cycle)
        log.info("syncd started: %d calendars, every %ds", len(self.engine.staff), self.interval)
        try:
            if not self._become_active():
                return
            if self.lock is not None:
                release_stale_claims(self.engine)
            # Before the first cycle: Graph checks the endpoint when we subscribe.
            self.start_webhook()
            self.run_cycle()
            self._notify("READY=1")
            self._notify(f"STATUS=watching {len(self.engine.staff)} calendars")
            while not self.stop_event.is_set():
                if max_cycles is not None and self.cycles + self.failed_cycles >= max_cycles:
                    break
                scheduler.run_pending()
                self._notify("WATCHDOG=1")
                idle = scheduler.idle_seconds
                self.handle_notifications(
                    timeout=max(0.0, min(idle if idle is not None else 1.0, 5.0))
                )
        finally:
            self._notify("STOPPING=1")
            self.stop_webhook()
            self.engine.close()
            log.info("syncd stopped")

    def _become_active(self) -> bool:
        """Take the sender lock, standing by for it if another daemon holds it."""
        if self.lock is None or self.lock.try_acquire():
            return True
        if not self.lock.standby:
            raise ConfigError(self.lock.busy())
        self._notify("READY=1")  # started, as a standby: systemd must not time the start out
        self._notify("STATUS=standby: another syncd is active on this store")
        return stand_by(self.lock, self.stop_event, lambda: self._notify("WATCHDOG=1"))

    # --- change notifications ----------------------------------------------------------
    def start_webhook(self) -> bool:
        """Serve the notification endpoint if ``[webhook]`` is configured; False if not."""
        from syncd.track.subscriptions import Subscriptions
        from syncd.web.webhook import WebServer, create_app

        hook = self.engine.config.webhook
        if hook is None:
            return False
        try:
            client_state = hook.client_state.get()
            if not 1 <= len(client_state) <= 128:
                raise ConfigError("must be 1 to 128 characters")
        except ConfigError as exc:
            log.error("webhook.client_state: %s; change notifications are off, polling only", exc)
            return False
        subs = Subscriptions(
            self.engine.config, self.engine.store, self.engine.source, hook, client_state
        )
        subs.load()
        app = create_app(client_state=client_state, directory=subs.directory, work=self.work)
        web = WebServer(app, hook.host, hook.port, clock=self.clock)
        if not web.start():
            log.error(
                "webhook: cannot listen on %s; change notifications are off, polling only",
                hook.listen,
            )
            web.stop()
            return False
        log.info("webhook listening on %s", hook.listen)
        self._web, self._subs = web, subs
        return True

    def stop_webhook(self) -> None:
        if self._web is not None:
            self._web.stop()
            self._web = None

    def handle_notifications(self, timeout: float) -> None:
        """Wait up to ``timeout`` for notifications; sync the calendars they name at once."""
        try:
            first = self.work.get(timeout=timeout)
        except queue.Empty:
            return
        batch = [first]
        while True:  # Graph sends bursts (created + updated): one partial cycle for all
            try:
                batch.append(self.work.get_nowait())
            except queue.Empty:
                break
        keys = {k for w in batch if w for k in w.sync if k in self.engine.staff}
        renew = {s for w in batch if w for s in w.renew}
        recreate = {k for w in batch if w for k in w.recreate}
        if self.stop_event.is_set() or not self.still_active():
            return
        if keys:
            log.info("change notification: syncing %d calendar(s) now", len(keys))
            try:
                self.engine.cycle(self.clock(), only=keys)
                self.partial_cycles += 1
            except Exception as exc:
                self.failed_cycles += 1
                log.error(
                    "partial sync cycle failed (%s); the next poll covers it", type(exc).__name__
                )
                log.debug("traceback", exc_info=True)
        if renew or recreate:
            self._maintain_subscriptions(self.clock(), renew=renew, recreate=recreate)

    def _maintain_subscriptions(
        self, now: datetime, *, renew: set[str] | None = None, recreate: set[str] | None = None
    ) -> None:
        if self._subs is None:
            return
        try:
            self._subs.maintain(now, renew=renew or set(), recreate=recreate or set())
        except Exception as exc:
            # Subscriptions only speed things up; polling must go on regardless.
            log.error(
                "Graph subscription upkeep failed (%s); polling continues", type(exc).__name__
            )
            log.debug("traceback", exc_info=True)
