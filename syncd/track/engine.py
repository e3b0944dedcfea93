"""One sync cycle: read every calendar, store what changed, check it, tell people.

The engine owns no clock: ``cycle(now)`` is given the time. Each step's effects are in the
store before the next step starts (sync -> evaluate -> enqueue -> deliver), so a crash at any
point is repaired by the next cycle and nothing is sent twice.
"""

from __future__ import annotations

import json
import logging
import time as _time
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from syncd.config import Config, Staff, Team
from syncd.domain import rules
from syncd.domain.model import ChangeSet, Occurrence, Problem, Window
from syncd.domain.tracking import (
    diff_findings,
    local_day,
    problem_finding,
    window_between,
    window_for,
)
from syncd.errors import AuthError, ConfigError, NotifyError, SourceError
from syncd.notify.base import Message, Notifier
from syncd.notify.render import render_digest, render_morning, render_nudge
from syncd.parse.ical import parse_ical
from syncd.sources import Source, load
from syncd.sources.base import SyncRequest
from syncd.store import CalendarState, OutboxRow, Store
from syncd.store.db import locator_hash, utc_start
from syncd.track import metrics

log = logging.getLogger(__name__)

Event = tuple[str, str, str | None, dict[str, Any]]

RETRY_DELAYS = (60, 120, 300, 600, 1800)
"""Seconds before re-sending a failed notification; the last repeats until it goes."""


@dataclass
class CycleReport:
    calendars: int = 0
    changed: int = 0
    failed: int = 0
    evaluated: int = 0
    visits: int = 0
    new_findings: int = 0
    resolved_findings: int = 0
    requests: int = 0
    sent: int = 0
    send_failures: int = 0
    blind: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Sync:
    key: str
    changes: ChangeSet | None
    error: SourceError | None


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
        self._not_before: dict[str, datetime] = {}
        self.staff: dict[str, tuple[Team, Staff]] = {
            s.id: (team, s) for team in config.teams for s in team.staff
        }

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

    # --- step 1: sync ----------------------------------------------------------------
    def sync_all(
        self, now: datetime, window: Window, report: CycleReport, only: set[str] | None = None
    ) -> None:
        states = self._register()
        known_all = self.store.all_known()
        # Calendars grouped per source into batches of the source's batch_size (Graph serves
        # 20 mailboxes per $batch; the others one per call), each batch one pool job.
        batches: list[tuple[Source, list[tuple[str, SyncRequest]]]] = []
        open_batch: dict[str, list[tuple[str, SyncRequest]]] = {}
        for key, (_team, staff) in self.staff.items():
            if only is not None and key not in only:
                continue
            report.calendars += 1
            if (nb := self._not_before.get(key)) is not None and now < nb:
                continue  # the server asked us to back off
            try:
                src = self.source(staff.calendar.source)
            except ConfigError as exc:
                self._failed(key, SourceError(str(exc), permanent=True), now, report)
                continue
            req = SyncRequest(
                staff.calendar.locator, states[key].sync_state, known_all.get(key, {}), window
            )
            batch = open_batch.get(src.name)
            if (
                batch is None
                or len(batch) >= src.batch_size
                or any(r.locator == req.locator for _k, r in batch)
            ):
                batch = open_batch[src.name] = []
                batches.append((src, batch))
            batch.append((key, req))

        def run(job: tuple[Source, list[tuple[str, SyncRequest]]]) -> list[_Sync]:
            src, batch = job
            try:
                if len(batch) == 1:
                    key, r = batch[0]
                    return [_Sync(key, src.sync(r.locator, r.state, r.known, r.window), None)]
                results = src.sync_many([r for _k, r in batch])
            except SourceError as exc:
                return [_Sync(key, None, exc) for key, _r in batch]
            except Exception as exc:  # a library error we did not translate: still a blind spot
                log.error("source %s raised %s", src.name, type(exc).__name__)
                log.debug("traceback", exc_info=True)
                err = SourceError(f"unexpected {type(exc).__name__}")
                return [_Sync(key, None, err) for key, _r in batch]
            out: list[_Sync] = []
            for key, r in batch:
                res = results.get(r.locator) or SourceError(f"{src.name}: no answer for a calendar")
                if isinstance(res, SourceError):
                    out.append(_Sync(key, None, res))
                else:
                    out.append(_Sync(key, res, None))
            return out

        # Sources do network I/O in threads; the store is written from this thread only.
        quiet: list[tuple[str, str | None]] = []
        with ThreadPoolExecutor(
            max_workers=self.config.concurrency, thread_name_prefix="sync"
        ) as pool:
            for result in (r for rs in pool.map(run, batches) for r in rs):
                state = states[result.key]
                changes = result.changes
                if result.error is not None:
                    self._failed(result.key, result.error, now, report)
                elif changes is None:
                    continue
                elif (
                    not changes.upserts
                    and not changes.deletes
                    and state.failures == 0
                    and state.blind_since is None
                    and state.empty_since is None
                ):
                    # The common case, a healthy calendar with nothing new: batched into one
                    # transaction below, so a quiet cycle costs one commit, not one per calendar.
                    report.requests += changes.requests
                    self._not_before.pop(result.key, None)
                    quiet.append((result.key, changes.state))
                else:
                    self._synced(
                        result.key, state, changes, known_all.get(result.key, {}), now, report
                    )
        self.store.mark_synced(quiet, now)

    def _register(self) -> dict[str, CalendarState]:
        """The stored state of every configured calendar, registering new or moved ones."""
        states = {s.key: s for s in self.store.calendars()}
        for key, (_team, staff) in self.staff.items():
            st = states.get(key)
            if st is None or st.locator_hash != locator_hash(
                staff.calendar.source, staff.calendar.locator
            ):
                states[key] = self.store.ensure_calendar(
                    key, staff.calendar.source, staff.calendar.locator
                )
        return states

    def _synced(
        self,
        key: str,
        state: CalendarState,
        changes: ChangeSet,
        known: Mapping[str, str],
        now: datetime,
        report: CycleReport,
    ) -> None:
        team, staff = self.staff[key]
        report.requests += changes.requests
        self._not_before.pop(key, None)
        events: list[Event] = []
        if state.blind_since is not None and self.store.set_blind(key, None):
            log.warning("calendar %s readable again", key)
            events.append(
                (
                    "recovered",
                    team.name,
                    None,
                    self._who(staff) | {"since": self._local(state.blind_since)},
                )
            )
        emptied = (
            changes.full and known and not changes.upserts and set(changes.deletes) >= set(known)
        )
        if emptied:
            if state.empty_since is None:
                log.warning(
                    "calendar %s suddenly returned no entries; keeping %d held", key, len(known)
                )
                self.store.mark_ok(key, now, empty_since=now)
                events.append(
                    ("emptied", team.name, None, self._who(staff) | {"since": self._local(now)})
                )
                self.store.enqueue(events, now)
                return
            if now - state.empty_since < self.config.empty_grace:
                self.store.mark_ok(key, now, empty_since=state.empty_since)
                self.store.enqueue(events, now)
                return
            log.warning("calendar %s empty for %s; accepting it", key, self.config.empty_grace)
            events.append(
                (
                    "empty-accepted",
                    team.name,
                    None,
                    self._who(staff) | {"grace_minutes": self.config.empty_grace_minutes},
                )
            )
        elif state.empty_since is not None:
            log.warning("calendar %s has entries again", key)
            events.append(
                (
                    "refilled",
                    team.name,
                    None,
                    self._who(staff) | {"since": self._local(state.empty_since)},
                )
            )
        if changes.upserts or changes.deletes:
            report.changed += 1
        self.store.apply_changes(key, changes, now)
        self.store.enqueue(events, now)

    def _failed(self, key: str, error: SourceError, now: datetime, report: CycleReport) -> None:
        team, staff = self.staff[key]
        report.failed += 1
        failures = self.store.record_failure(key, str(error))
        if error.retry_after:
            self._not_before[key] = now + timedelta(seconds=error.retry_after)
        log.warning("calendar %s unreadable (%d in a row): %s", key, failures, error)
        if isinstance(error, AuthError) or error.permanent or failures >= self.config.blind_after:
            report.blind.append(key)
            if self.store.set_blind(key, now):
                self.store.enqueue(
                    [
                        (
                            "blind",
                            team.name,
                            None,
                            self._who(staff) | {"since": self._local(now), "error": str(error)},
                        )
                    ],
                    now,
                )

    # --- step 2: evaluate ------------------------------------------------------------
    def evaluate_all(self, now: datetime, window: Window, report: CycleReport) -> None:
        today = local_day(now, self.tz).isoformat()
        states = {s.key: s for s in self.store.calendars()}
        for key in self.staff:
            state = states.get(key)
            if state is None or (not state.dirty and state.evaluated_day == today):
                continue
            self.evaluate(key, now, window, report)

    def evaluate(self, key: str, now: datetime, window: Window, report: CycleReport) -> None:
        team, staff = self.staff[key]
        occurrences, problems = self.occurrences(key, window)
        result = rules.check(
            occurrences, calendar=key, tz=self.tz, window=window, config=self.config.rules
        )
        findings = list(result.findings) + [problem_finding(key, p, window) for p in problems]
        open_ = self.store.open_findings(key)
        diff = diff_findings(
            {k: f.start_utc for k, f in open_.items()},
            findings,
            {v.key for v in result.visits},
            {k: f.occurrence for k, f in open_.items()},
            window,
        )
        events: list[Event] = []
        for f in diff.new:
            payload = self._who(staff) | {
                "rule": f.rule,
                "summary": f.summary,
                "start": f.start.isoformat(),
                "message": f.message,
            }
            events.append(("finding", team.name, None, payload))
            if self.config.notify.nudge_staff and staff.email:
                events.append(("nudge", team.name, staff.email, payload))
        for fkey, resolution in diff.resolved:
            if resolution == "fixed":
                f0 = open_[fkey]
                events.append(
                    (
                        "fixed",
                        team.name,
                        None,
                        self._who(staff)
                        | {"rule": f0.rule, "summary": f0.summary, "start": f0.start},
                    )
                )
        # An unreadable entry has no date of its own and is dated at today's window start;
        # moving it along each day keeps it in the morning report until it is fixed.
        redated = [
            (f.key, f.start.isoformat(), utc_start(f.start))
            for f in findings
            if f.key in open_ and open_[f.key].start != f.start.isoformat()
        ]
        self.store.save_evaluation(
            key,
            day=local_day(now, self.tz).isoformat(),
            now=now,
            visits=result.visits,
            new=[(f, utc_start(f.start)) for f in diff.new],
            resolved=diff.resolved,
            redated=redated,
            events=events,
        )
        report.evaluated += 1
        report.visits += len(result.visits)
        report.new_findings += len(diff.new)
        report.resolved_findings += len(diff.resolved)

    def occurrences(self, key: str, window: Window) -> tuple[list[Occurrence], list[Problem]]:
        occs: list[Occurrence] = []
        problems: list[Problem] = []
        for item in self.store.items(key):
            if item.kind == "ical":
                try:
                    parsed = parse_ical(item.data, window=window, tz=self.tz)
                except Exception as exc:  # one unreadable entry must not blind us to the rest
                    problems.append(
                        Problem(
                            uid=item.href,
                            summary="",
                            message=f"entry could not be read ({type(exc).__name__})",
                        )
                    )
                    continue
                occs.extend(parsed.occurrences)
                problems.extend(parsed.problems)
            elif item.kind == "problem":  # the source listed the entry but could not read it
                try:
                    d = json.loads(item.data)
                    problems.append(Problem(str(d["uid"]), str(d["summary"]), str(d["message"])))
                except (ValueError, KeyError, TypeError):
                    problems.append(Problem(item.href, "", "entry could not be read"))
            else:
                occ = Occurrence.from_json(item.data)
                occs.append(occ)
        return occs, problems

    # --- step 3: daily reports -------------------------------------------------------
    def enqueue_reports(self, now: datetime) -> None:
        at = self.config.notify.morning_report
        local = now.astimezone(self.tz)
        if at is None or local.time() < at:
            return
        day = local.date()
        span = window_between(day, day + timedelta(days=2), self.tz)
        findings = self.store.all_open_findings(span.start, span.end)
        states = {s.key: s for s in self.store.calendars()}
        for team in self.config.teams:
            ids = {s.id for s in team.staff}
            names = {s.id: s.name for s in team.staff}
            payload = {
                "day": day.isoformat(),
                "findings": [
                    {
                        "staff_id": f.calendar,
                        "staff_name": names[f.calendar],
                        "rule": f.rule,
                        "summary": f.summary,
                        "start": f.start,
                        "message": f.message,
                    }
                    for f in findings
                    if f.calendar in ids
                ],
                "blind": [
                    {"staff_name": names[k], "since": self._local(st.blind_since)}
                    for k, st in states.items()
                    if k in ids and st.blind_since is not None
                ],
                "visits": self.store.count_visits(ids, span.start, span.end),
            }
            self.store.claim_report(
                team.name, "morning", day.isoformat(), ("morning", team.name, None, payload), now
            )

    # --- step 4: deliver -------------------------------------------------------------
    def deliver(self, now: datetime, report: CycleReport) -> None:
        due = self.store.due(now)
        if not due:
            return
        if self.notifier is None:
            log.error(
                "%d notifications waiting but no [smtp] is configured: nobody is being told",
                len(due),
            )
            report.send_failures += len(due)
            return
        teams = {t.name: t for t in self.config.teams}
        groups: dict[tuple[str, str | None, str], list[OutboxRow]] = defaultdict(list)
        for row in due:
            kind = row.kind if row.kind in ("morning", "nudge") else "digest"
            groups[(row.team, row.recipient, kind)].append(row)
        for (team_name, recipient, kind), rows in groups.items():
            team = teams.get(team_name)
            to = [recipient] if recipient else (team.monitors if team else [])
            if not to:
                self.store.defer([r.id for r in rows], "team no longer configured", None, now)
                log.error("dropping %d notifications for a team no longer configured", len(rows))
                continue
            messages: list[tuple[Message, list[int]]]
            if kind == "morning":
                messages = [(render_morning(team_name, r.payload, to=to), [r.id]) for r in rows]
            elif kind == "nudge":
                messages = [
                    (render_nudge(rows[0].payload["staff_name"], rows, to=to), [r.id for r in rows])
                ]
            else:
                messages = [(render_digest(team_name, rows, to=to), [r.id for r in rows])]
            for msg, ids in messages:
                attempts = max(r.attempts for r in rows if r.id in ids)
                try:
                    self.notifier.send(msg)
                except NotifyError as exc:
                    report.send_failures += 1
                    if exc.permanent:
                        log.error("giving up on a %s message for team %s: %s", kind, team_name, exc)
                        self.store.defer(ids, str(exc), None, now)
                    else:
                        delay = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS) - 1)]
                        log.error(
                            "could not send a %s message for team %s (%s); retrying in %ds",
                            kind,
                            team_name,
                            exc,
                            delay,
                        )
                        self.store.defer(ids, str(exc), now + timedelta(seconds=delay), now)
                    continue
                self.store.mark_sent(ids, now)
                report.sent += 1

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

    # --- helpers ---------------------------------------------------------------------
    def _local(self, moment: datetime) -> str:
        """ISO text in the teams' zone, so emails show the wall-clock time people live by."""
        return moment.astimezone(self.tz).isoformat()

    @staticmethod
    def _who(staff: Staff) -> dict[str, Any]:
        return {"staff_id": staff.id, "staff_name": staff.name}
