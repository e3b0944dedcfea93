"""Step 1 of the cycle: read every calendar (in threads) and store what changed.

Also where a calendar turns blind, readable again, empty or refilled: those transitions are
written to the outbox together with the state that caused them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from syncd.config import Config
from syncd.domain.events import Blind, Emptied, EmptyAccepted, Notice, Recovered, Refilled
from syncd.domain.model import ChangeSet, Window
from syncd.errors import AuthError, ConfigError, SourceError
from syncd.sources import Source
from syncd.sources.base import SyncRequest
from syncd.store import CalendarState, Store, locator_hash
from syncd.track.context import CycleReport, Roster, local

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Sync:
    key: str
    changes: ChangeSet | None
    error: SourceError | None


class Syncer:
    """Reads calendars; remembers across cycles which ones asked us to back off."""

    def __init__(
        self, config: Config, store: Store, staff: Roster, source: Callable[[str], Source]
    ):
        self.config = config
        self.store = store
        self.staff = staff
        self.source = source
        self.tz = config.tz
        self.not_before: dict[str, datetime] = {}

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
            if (nb := self.not_before.get(key)) is not None and now < nb:
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
                    self.not_before.pop(result.key, None)
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
        self.not_before.pop(key, None)
        notices: list[Notice] = []
        if state.blind_since is not None and self.store.set_blind(key, None):
            log.warning("calendar %s readable again", key)
            since = local(state.blind_since, self.tz)
            notices.append(Notice(team.name, Recovered(staff.id, staff.name, since)))
        emptied = (
            changes.full and known and not changes.upserts and set(changes.deletes) >= set(known)
        )
        if emptied:
            if state.empty_since is None:
                log.warning(
                    "calendar %s suddenly returned no entries; keeping %d held", key, len(known)
                )
                self.store.mark_ok(key, now, empty_since=now)
                emptied_at = local(now, self.tz)
                notices.append(Notice(team.name, Emptied(staff.id, staff.name, emptied_at)))
                self.store.enqueue(notices, now)
                return
            if now - state.empty_since < self.config.empty_grace:
                self.store.mark_ok(key, now, empty_since=state.empty_since)
                self.store.enqueue(notices, now)
                return
            log.warning("calendar %s empty for %s; accepting it", key, self.config.empty_grace)
            grace = self.config.empty_grace_minutes
            notices.append(Notice(team.name, EmptyAccepted(staff.id, staff.name, grace)))
        elif state.empty_since is not None:
            log.warning("calendar %s has entries again", key)
            since = local(state.empty_since, self.tz)
            notices.append(Notice(team.name, Refilled(staff.id, staff.name, since)))
        if changes.upserts or changes.deletes:
            report.changed += 1
        self.store.apply_changes(key, changes, now)
        self.store.enqueue(notices, now)

    def _failed(self, key: str, error: SourceError, now: datetime, report: CycleReport) -> None:
        team, staff = self.staff[key]
        report.failed += 1
        failures = self.store.record_failure(key, str(error))
        if error.retry_after:
            self.not_before[key] = now + timedelta(seconds=error.retry_after)
        log.warning("calendar %s unreadable (%d in a row): %s", key, failures, error)
        if isinstance(error, AuthError) or error.permanent or failures >= self.config.blind_after:
            report.blind.append(key)
            if self.store.set_blind(key, now):
                blind = Blind(staff.id, staff.name, local(now, self.tz), str(error))
                self.store.enqueue([Notice(team.name, blind)], now)
