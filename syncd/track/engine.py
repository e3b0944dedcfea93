"""One sync cycle: read every calendar, store what changed, check it, tell people.

The engine owns no clock: ``cycle(now)`` is given the time. Each step's effects are in the
store before the next step starts (sync -> evaluate -> enqueue -> deliver), so a crash at any
point is repaired by the next cycle and nothing is sent twice. Each step lives in its own
module (:mod:`.sync`, :mod:`.evaluate`, :mod:`.reports`, :mod:`.deliver`); this one wires
them together.
"""

from __future__ import annotations

import logging
import time as _time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from syncd.config import Config, Staff, Team
from syncd.domain.model import Occurrence, Problem, Window
from syncd.domain.tracking import window_for
from syncd.errors import ConfigError
from syncd.notify.base import Notifier
from syncd.sources import Source, load
from syncd.store import Store
from syncd.track import deliver, metrics, reports
from syncd.track.context import CycleReport, roster
from syncd.track.deliver import RETRY_DELAYS
from syncd.track.evaluate import Evaluator
from syncd.track.sync import Syncer

__all__ = ["RETRY_DELAYS", "CycleReport", "Engine"]

log = logging.getLogger(__name__)


class Engine:
    """Holds the configured sources, the store and the notifier; no I/O in the constructor."""

    def __init__(
        self,
        config: Config,
        store: Store,
        notifier: Notifier | None,
        sources: Mapping[str, Source] | None = None,
        secret: Callable[[str, str], str] | None = None,
    ):
        self.config = config
        self.store = store
        self.notifier = notifier
        self.tz = config.tz
        self._sources: dict[str, Source] = dict(sources or {})
        self._secret = secret
        self.staff: dict[str, tuple[Team, Staff]] = roster(config)
        self._sync = Syncer(config, store, self.staff, self.source)
        self._evaluate = Evaluator(config, store, self.staff)

    # --- wiring ----------------------------------------------------------------------
    def source(self, name: str) -> Source:
        if name not in self._sources:
            idx = next(i for i, s in enumerate(self.config.sources) if s.name == name)
            sc = self.config.sources[idx]
            options = self.config.source_options(idx)

            def read_secret(field_name: str, _opts: Any = options) -> str:
                ref = getattr(_opts, field_name, None)
                if ref is None:
                    raise ConfigError(f"sources[{idx}].{field_name}: not configured")
                value: str = ref.get()
                return value

            self._sources[name] = load(sc.kind)(sc.name, options, read_secret)
        return self._sources[name]

    def close(self) -> None:
        for s in self._sources.values():
            s.close()
        if self.notifier is not None:
            self.notifier.close()

    # --- the cycle -------------------------------------------------------------------
    def cycle(self, now: datetime, only: set[str] | None = None) -> CycleReport:
        """One cycle; ``only`` limits the sync to those calendars (a change notification
        asked for them), while evaluation, reports and delivery run as always."""
        started = _time.monotonic()
        report = CycleReport()
        window = window_for(now, self.tz, self.config.lookahead_days)
        self.sync_all(now, window, report, only)
        self.evaluate_all(now, window, report)
        self.enqueue_reports(now)
        self.deliver(now, report)
        if self.config.metrics_file is not None:
            self.write_metrics(now, window, report, _time.monotonic() - started)
        log.info(
            "cycle done: %d calendars, %d changed, %d unreadable, %d evaluated, %d visits, "
            "%d new findings, %d resolved, %d requests, %d messages sent, %.2fs",
            report.calendars,
            report.changed,
            report.failed,
            report.evaluated,
            report.visits,
            report.new_findings,
            report.resolved_findings,
            report.requests,
            report.sent,
            _time.monotonic() - started,
        )
        return report

    # --- the steps (each in its own module) -------------------------------------------
    def sync_all(
        self, now: datetime, window: Window, report: CycleReport, only: set[str] | None = None
    ) -> None:
        self._sync.sync_all(now, window, report, only)

    def evaluate_all(self, now: datetime, window: Window, report: CycleReport) -> None:
        self._evaluate.evaluate_all(now, window, report)

    def evaluate(self, key: str, now: datetime, window: Window, report: CycleReport) -> None:
        self._evaluate.evaluate(key, now, window, report)

    def occurrences(self, key: str, window: Window) -> tuple[list[Occurrence], list[Problem]]:
        return self._evaluate.occurrences(key, window)

    def enqueue_reports(self, now: datetime) -> None:
        reports.enqueue_reports(self.config, self.store, now)

    def deliver(self, now: datetime, report: CycleReport) -> None:
        deliver.deliver(self.config, self.store, self.notifier, now, report)

    # --- metrics ---------------------------------------------------------------------
    def write_metrics(
        self, now: datetime, window: Window, report: CycleReport, seconds: float
    ) -> None:
        assert self.config.metrics_file is not None
        states = self.store.calendars()
        try:
            metrics.write(
                self.config.metrics_file,
                [
                    ("syncd_calendars", len(self.staff)),
                    ("syncd_calendars_unreadable", report.failed),
                    (
                        "syncd_calendars_blind",
                        sum(1 for s in states if s.key in self.staff and s.blind_since),
                    ),
                    (
                        "syncd_findings_open",
                        len(self.store.all_open_findings(window.start, window.end)),
                    ),
                    ("syncd_visits_checked", report.visits),
                    ("syncd_outbox_pending", self.store.pending_count()),
                    ("syncd_cycle_requests", report.requests),
                    ("syncd_cycle_seconds", seconds),
                    ("syncd_send_failures", report.send_failures),
                    ("syncd_last_cycle_timestamp_seconds", metrics.timestamp(now)),
                ],
            )
        except OSError as exc:
            log.error("cannot write metrics file: %s", exc.strerror)
