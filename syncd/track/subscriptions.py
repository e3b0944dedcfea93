"""Graph change-notification subscriptions for every staff calendar on a graph source.

:func:`plan` is pure: from the calendars that should be subscribed, the subscriptions the
store holds and ``now``, it decides what to create, renew, recreate or drop.
:class:`Subscriptions` carries the plan out through :class:`GraphSource` and records each
result in the store at once, so a restart neither loses a subscription nor makes a second.

Notifications only make corrections show sooner; polling is the safety net. So a failure
here is a warning (no personal data) and a retry on a later cycle, never an exception that
could stop the poll.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from syncd.config import Config, Webhook
from syncd.errors import SyncdError
from syncd.sources.base import Source
from syncd.sources.graph.notify import Subscription, subscription_expiry
from syncd.sources.graph.source import GraphSource, SubscriptionGone
from syncd.store import GraphSubscriptionRow, Store, locator_hash

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Wanted:
    """A staff calendar that should have a subscription."""

    calendar: str
    source: str
    locator: str

    @property
    def locator_hash(self) -> str:
        return locator_hash(self.source, self.locator)


@dataclass(frozen=True, slots=True)
class Action:
    kind: Literal["create", "renew", "recreate", "drop"]
    calendar: str
    wanted: Wanted | None = None
    current: GraphSubscriptionRow | None = None


def plan(
    wanted: Mapping[str, Wanted],
    stored: Mapping[str, GraphSubscriptionRow],
    now: datetime,
    *,
    margin: timedelta,
    renew: Collection[str] = (),
    recreate: Collection[str] = (),
) -> list[Action]:
    """What to do, drops first. ``renew`` holds subscription ids Graph asked us to
    reauthorize; ``recreate`` holds calendars whose subscription Graph removed."""
    drops: list[Action] = []
    rest: list[Action] = []
    for key, row in stored.items():
        w = wanted.get(key)
        if w is None or w.source != row.source or w.locator_hash != row.locator_hash:
            drops.append(Action("drop", key, current=row))
    dropped = {a.calendar for a in drops}
    for key, w in wanted.items():
        current = stored.get(key)
        if current is None or key in dropped:
            rest.append(Action("create", key, wanted=w))
        elif key in recreate or current.expires_at <= now:
            # An expired subscription cannot be renewed (Graph answers 404).
            rest.append(Action("recreate", key, wanted=w, current=current))
        elif current.subscription_id in renew or current.expires_at - now <= margin:
            rest.append(Action("renew", key, wanted=w, current=current))
    return drops + rest


@dataclass
class MaintenanceReport:
    created: int = 0
    renewed: int = 0
    dropped: int = 0
    failed: int = 0
    actions: list[str] = field(default_factory=list)


class Subscriptions:
    """Keeps one subscription per graph calendar. No I/O in the constructor."""

    def __init__(
        self,
        config: Config,
        store: Store,
        source: Callable[[str], Source],
        webhook: Webhook,
        client_state: str,
    ):
        self.config = config
        self.store = store
        self._source = source
        self.webhook = webhook
        self._client_state = client_state
        self._lock = threading.Lock()
        self._directory: dict[str, str] = {}
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, datetime] = {}

    @property
    def margin(self) -> timedelta:
        return self.webhook.lifetime / 3

    def directory(self) -> dict[str, str]:
        """Subscription id -> staff calendar key; safe to call from the web thread."""
        with self._lock:
            return dict(self._directory)

    def load(self) -> None:
        """Publish the stored subscriptions, so notifications are accepted from the start."""
        self._publish(self.store.graph_subscriptions())

    def wanted(self) -> dict[str, Wanted]:
        graph_sources = {s.name for s in self.config.sources if s.kind == GraphSource.kind}
        return {
            staff.id: Wanted(staff.id, staff.calendar.source, staff.calendar.locator)
            for team in self.config.teams
            for staff in team.staff
            if staff.calendar.source in graph_sources
        }

    def maintain(
        self,
        now: datetime,
        *,
        renew: Collection[str] = (),
        recreate: Collection[str] = (),
    ) -> MaintenanceReport:
        report = MaintenanceReport()
        stored = {r.calendar: r for r in self.store.graph_subscriptions()}
        actions = plan(
            self.wanted(), stored, now, margin=self.margin, renew=renew, recreate=recreate
        )
        asked = set(recreate) | {r.calendar for r in stored.values() if r.subscription_id in renew}
        for action in actions:
            key = action.calendar
            retry_at = self._retry_at.get(key)
            if action.kind != "drop" and retry_at and now < retry_at and key not in asked:
                continue  # failed recently: don't hammer Graph every poll
            try:
                self._carry_out(action, now, report)
            except Exception as exc:
                report.failed += 1
                n = self._failures[key] = self._failures.get(key, 0) + 1
                self._retry_at[key] = now + min(timedelta(minutes=2 ** min(n, 10)), MAX_BACKOFF)
                # Our errors carry no personal data; a library's might, so only its type.
                why = str(exc) if isinstance(exc, SyncdError) else type(exc).__name__
                log.warning(
                    "calendar %s: could not %s its Graph subscription (%s); polling continues "
                    "and it is retried later",
                    key,
                    action.kind,
                    why,
                )
            else:
                self._failures.pop(key, None)
                self._retry_at.pop(key, None)
                report.actions.append(f"{action.kind} {key}")
        self._publish(self.store.graph_subscriptions())
        if report.created or report.renewed or report.dropped:
            log.info(
                "Graph subscriptions: %d created, %d renewed, %d dropped, %d failed",
                report.created,
                report.renewed,
                report.dropped,
                report.failed,
            )
        return report

    # --- carrying out one action -------------------------------------------------------
    def _carry_out(self, action: Action, now: datetime, report: MaintenanceReport) -> None:
        if action.kind == "drop":
            assert action.current is not None
            self._unsubscribe(action.current)
            self.store.delete_graph_subscription(action.calendar)
            report.dropped += 1
            return
        assert action.wanted is not None
        if action.kind == "renew":
            assert action.current is not None
            try:
                self._renew(action.wanted, action.current, now)
                report.renewed += 1
                return
            except SubscriptionGone:
                pass  # Graph removed it: subscribe again below
        if action.current is not None:
            # Best effort: a removed subscription is already gone, an expired one lapses.
            with contextlib.suppress(SyncdError):
                self._unsubscribe(action.current)
            self.store.delete_graph_subscription(action.calendar)
        self._create(action.wanted, now)
        report.created += 1

    def _graph(self, name: str) -> GraphSource:
        src = self._source(name)
        if not isinstance(src, GraphSource):
            raise SyncdError(f"source {name} is not a graph source")
        return src

    def _create(self, w: Wanted, now: datetime) -> None:
        sub = self._graph(w.source).subscribe(
            w.locator,
            notification_url=self.webhook.notification_url,
            client_state=self._client_state,
            expires=subscription_expiry(now, self.webhook.lifetime),
            lifecycle_url=self.webhook.lifecycle_url,
        )
        # Recorded at once: a crash from here on finds it in the store, not a duplicate.
        # (A crash between Graph's answer and this line leaves one orphan that lapses.)
        self._save(w, sub, now)
        with self._lock:
            self._directory[sub.id] = w.calendar

    def _renew(self, w: Wanted, row: GraphSubscriptionRow, now: datetime) -> None:
        current = Subscription(row.subscription_id, w.locator, row.expires_at)
        sub = self._graph(w.source).renew(current, subscription_expiry(now, self.webhook.lifetime))
        self._save(w, sub, row.created_at)

    def _unsubscribe(self, row: GraphSubscriptionRow) -> None:
        if not any(s.name == row.source for s in self.config.sources):
            return  # the source is gone from the config: the subscription lapses by itself
        # The locator only picks a concurrency slot; the stored hash stands in for it.
        sub = Subscription(row.subscription_id, row.locator_hash, row.expires_at)
        self._graph(row.source).unsubscribe(sub)

    def _save(self, w: Wanted, sub: Subscription, created: datetime) -> None:
        self.store.save_graph_subscription(
            GraphSubscriptionRow(
                calendar=w.calendar,
                subscription_id=sub.id,
                source=w.source,
                locator_hash=w.locator_hash,
                expires_at=sub.expires,
                created_at=created,
            )
        )

    def _publish(self, rows: list[GraphSubscriptionRow]) -> None:
        with self._lock:
            self._directory = {r.subscription_id: r.calendar for r in rows}
