"""The store: every read and write of syncd's state, and nothing else.

Writes that must happen together (items and the sync state that describes them; new
findings and the outbox rows announcing them) share one transaction, so a crash leaves
either the old state or the new one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    create_engine,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from syncd.domain.model import ChangeSet, Finding, Occurrence, RawItem
from syncd.errors import StoreError
from syncd.store import schema as t


@dataclass(frozen=True, slots=True)
class CalendarState:
    key: str
    source: str
    locator_hash: str
    sync_state: str | None
    last_ok_at: datetime | None
    failures: int
    last_error: str | None
    blind_since: datetime | None
    empty_since: datetime | None
    evaluated_day: str | None
    dirty: bool


@dataclass(frozen=True, slots=True)
class OpenFinding:
    key: str
    calendar: str
    rule: str
    occurrence: str
    summary: str
    start: str
    start_utc: datetime
    message: str
    first_seen: datetime


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    kind: str
    team: str
    recipient: str | None
    payload: dict[str, Any]
    created_at: datetime
    attempts: int


@dataclass(frozen=True, slots=True)
class GraphSubscriptionRow:
    calendar: str
    subscription_id: str
    source: str
    locator_hash: str
    expires_at: datetime
    created_at: datetime


def locator_hash(source: str, locator: str) -> str:
    return hashlib.sha256(f"{source}\0{locator}".encode()).hexdigest()


def resolve_url(url: str, environ: dict[str, str] | None = None) -> str:
    """Put relative SQLite paths under systemd's $STATE_DIRECTORY when it is set."""
    env = dict(os.environ) if environ is None else environ
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        state_dir = env.get("STATE_DIRECTORY", "").split(":")[0]
        if state_dir:
            return prefix + str(Path(state_dir) / url[len(prefix) :])
    return url


def open_store(url: str) -> Store:
    """Open (creating and migrating as needed) the database at ``url``."""
    try:
        # hide_parameters: an error must never quote calendar data into the logs.
        engine = create_engine(resolve_url(url), future=True, hide_parameters=True)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        store = Store(engine)
        store.migrate()
        return store
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot open state database: {type(exc).__name__}: {exc.args[0] if exc.args else ''}"
        ) from None


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the board read while a cycle writes; FULL sync so an acknowledged write
    # survives power loss (an alert's outbox row must never vanish).
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


class Store:
    def __init__(self, engine: Engine):
        self.engine = engine

    # --- lifecycle -------------------------------------------------------------------
    def migrate(self) -> None:
        migrations = resources.files("syncd.store") / "migrations"
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(migrations))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def close(self) -> None:
        self.engine.dispose()

    # --- calendars -------------------------------------------------------------------
    def calendar(self, key: str) -> CalendarState | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.calendars).where(t.calendars.c.key == key)).first()
        return CalendarState(**row._mapping) if row else None

    def calendars(self) -> list[CalendarState]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.calendars).order_by(t.calendars.c.key)).all()
        return [CalendarState(**r._mapping) for r in rows]

    def ensure_calendar(self, key: str, source: str, locator: str) -> CalendarState:
        """Register a configured calendar. A changed source or locator starts it afresh."""
        h = locator_hash(source, locator)
        with self.engine.begin() as conn:
            row = conn.execute(select(t.calendars).where(t.calendars.c.key == key)).first()
            if row is None:
                conn.execute(
                    insert(t.calendars).values(
                        key=key, source=source, locator_hash=h, failures=0, dirty=True
                    )
                )
            elif row.locator_hash != h:
                conn.execute(delete(t.items).where(t.items.c.calendar == key))
                conn.execute(
                    update(t.calendars)
                    .where(t.calendars.c.key == key)
                    .values(
                        source=source, locator_hash=h, sync_state=None, dirty=True, empty_since=None
                    )
                )
        state = self.calendar(key)
        assert state is not None
        return state

    def known(self, key: str) -> dict[str, str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.items.c.href, t.items.c.etag).where(t.items.c.calendar == key)
            ).all()
        return {r.href: r.etag for r in rows}

    def items(self, key: str) -> list[RawItem]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.items.c.href, t.items.c.etag, t.items.c.kind, t.items.c.data)
                .where(t.items.c.calendar == key)
                .order_by(t.items.c.href)
            ).all()
        return [RawItem(href=r.href, etag=r.etag, kind=r.kind, data=r.data) for r in rows]

    def apply_changes(self, key: str, changes: ChangeSet, now: datetime) -> None:
        """Store a successful sync: items, their new sync state, and a healthy calendar."""
        with self.engine.begin() as conn:
            if changes.deletes:
                for chunk in _chunks(changes.deletes, 500):
                    conn.execute(
                        delete(t.items).where(t.items.c.calendar == key, t.items.c.href.in_(chunk))
                    )
            if changes.upserts:
                hrefs = [i.href for i in changes.upserts]
                for chunk in _chunks(hrefs, 500):
                    conn.execute(
                        delete(t.items).where(t.items.c.calendar == key, t.items.c.href.in_(chunk))
                    )
                conn.execute(
                    insert(t.items),
                    [
                        {
                            "calendar": key,
                            "href": i.href,
                            "etag": i.etag,
                            "kind": i.kind,
                            "data": i.data,
                        }
                        for i in changes.upserts
                    ],
                )
            values: dict[str, Any] = {
                "sync_state": changes.state,
                "last_ok_at": now,
                "failures": 0,
                "last_error": None,
                "empty_since": None,
            }
            if changes.upserts or changes.deletes:
                values["dirty"] = True
            conn.execute(update(t.calendars).where(t.calendars.c.key == key).values(**values))

    def all_known(self) -> dict[str, dict[str, str]]:
        """href -> etag of every stored item, per calendar, in one query."""
        out: dict[str, dict[str, str]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(select(t.items.c.calendar, t.items.c.href, t.items.c.etag)):
                out.setdefault(r.calendar, {})[r.href] = r.etag
        return out

    def mark_synced(self, synced: Sequence[tuple[str, str | None]], now: datetime) -> None:
        """Record quiet successful syncs (calendar key, new sync state) in one transaction."""
        if not synced:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(t.calendars)
                .where(t.calendars.c.key == bindparam("k"))
                .values(sync_state=bindparam("s"), last_ok_at=now),
                [{"k": k, "s": s} for k, s in synced],
            )

    def mark_ok(self, key: str, now: datetime, *, empty_since: datetime | None = None) -> None:
        """A read that succeeded but whose changes are being held (an empty calendar)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(t.calendars)
                .where(t.calendars.c.key == key)
                .values(last_ok_at=now, failures=0, last_error=None, empty_since=empty_since)
            )

    def record_failure(self, key: str, error: str) -> int:
        """Count a failed read; return the number of consecutive failures."""
        with self.engine.begin() as conn:
            conn.execute(
                update(t.calendars)
                .where(t.calendars.c.key == key)
                .values(failures=t.calendars.c.failures + 1, last_error=error)
            )
            n = conn.execute(
                select(t.calendars.c.failures).where(t.calendars.c.key == key)
            ).scalar_one()
        return int(n)

    def set_blind(self, key: str, since: datetime | None) -> bool:
        """Flip the blind-spot flag; True only for the caller that changed it.

        Only-if-unchanged, so an alert is enqueued once even if two cycles race.
        """
        with self.engine.begin() as conn:
            cond = (
                t.calendars.c.blind_since.is_(None)
                if since
                else t.calendars.c.blind_since.isnot(None)
            )
            res = conn.execute(
                update(t.calendars).where(t.calendars.c.key == key, cond).values(blind_since=since)
            )
        return bool(res.rowcount)

    # --- evaluation ------------------------------------------------------------------
    def open_findings(self, key: str) -> dict[str, OpenFinding]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.findings).where(
                    t.findings.c.calendar == key, t.findings.c.resolved_at.is_(None)
                )
            ).all()
        return {r.key: _open_finding(r._mapping) for r in rows}

    def all_open_findings(self, start_from: datetime, start_before: datetime) -> list[OpenFinding]:
        """Open findings for visits starting in [start_from, start_before), by start."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.findings)
                .where(
                    t.findings.c.resolved_at.is_(None),
                    t.findings.c.start_utc >= start_from,
                    t.findings.c.start_utc < start_before,
                )
                .order_by(t.findings.c.start_utc, t.findings.c.calendar, t.findings.c.rule)
            ).all()
        return [_open_finding(r._mapping) for r in rows]

    def count_visits(
        self, calendars: Iterable[str], start_from: datetime, start_before: datetime
    ) -> int:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.visits.c.occurrence).where(
                    t.visits.c.calendar.in_(list(calendars)),
                    t.visits.c.start_utc >= start_from,
                    t.visits.c.start_utc < start_before,
                )
            ).all()
        return len(rows)

    def save_evaluation(
        self,
        key: str,
        *,
        day: str,
        now: datetime,
        visits: Sequence[Occurrence],
        new: Sequence[tuple[Finding, datetime]],
        resolved: Iterable[tuple[str, str]],
        events: Sequence[tuple[str, str, str | None, dict[str, Any]]],
        redated: Iterable[tuple[str, str, datetime]] = (),
    ) -> None:
        """One transaction: visits as seen, new and resolved findings, and their outbox rows.

        ``new`` pairs each finding with its start in UTC; ``resolved`` is (finding key,
        resolution); ``redated`` is (finding key, start, start in UTC) for open findings whose
        date moved; ``events`` are outbox rows (kind, team, recipient, payload).
        """
        with self.engine.begin() as conn:
            conn.execute(delete(t.visits).where(t.visits.c.calendar == key))
            if visits:
                conn.execute(
                    insert(t.visits),
                    [
                        {
                            "calendar": key,
                            "occurrence": v.key,
                            "start_utc": utc_start(v.start),
                            "data": v.to_json(),
                            "seen_at": now,
                        }
                        for v in visits
                    ],
                )
            if new:
                # A finding fixed earlier and broken again is a new finding: its old, resolved
                # row makes way, or the insert would collide and it would never reopen.
                for chunk in _chunks([f.key for f, _ in new], 500):
                    conn.execute(
                        delete(t.findings).where(
                            t.findings.c.key.in_(chunk), t.findings.c.resolved_at.isnot(None)
                        )
                    )
                conn.execute(
                    insert(t.findings),
                    [
                        {
                            "key": f.key,
                            "calendar": key,
                            "rule": f.rule,
                            "occurrence": f.occurrence_key,
                            "uid": f.uid,
                            "summary": f.summary,
                            "start": f.start.isoformat(),
                            "start_utc": start_utc,
                            "message": f.message,
                            "first_seen": now,
                        }
                        for f, start_utc in new
                    ],
                )
            for fkey, start, start_utc in redated:
                conn.execute(
                    update(t.findings)
                    .where(t.findings.c.key == fkey, t.findings.c.resolved_at.is_(None))
                    .values(start=start, start_utc=start_utc)
                )
            for fkey, resolution in resolved:
                conn.execute(
                    update(t.findings)
                    .where(t.findings.c.key == fkey, t.findings.c.resolved_at.is_(None))
                    .values(resolved_at=now, resolution=resolution)
                )
            self._enqueue(conn, events, now)
            conn.execute(
                update(t.calendars)
                .where(t.calendars.c.key == key)
                .values(evaluated_day=day, dirty=False)
            )

    # --- outbox ----------------------------------------------------------------------
    def enqueue(
        self, events: Sequence[tuple[str, str, str | None, dict[str, Any]]], now: datetime
    ) -> None:
        with self.engine.begin() as conn:
            self._enqueue(conn, events, now)

    @staticmethod
    def _enqueue(
        conn: Connection,
        events: Sequence[tuple[str, str, str | None, dict[str, Any]]],
        now: datetime,
    ) -> None:
        if not events:
            return
        conn.execute(
            insert(t.outbox),
            [
                {
                    "kind": kind,
                    "team": team,
                    "recipient": recipient,
                    "payload": json.dumps(payload, sort_keys=True, default=str),
                    "created_at": now,
                    "due_at": now,
                    "attempts": 0,
                }
                for kind, team, recipient, payload in events
            ],
        )

    def due(self, now: datetime) -> list[OutboxRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.outbox)
                .where(
                    t.outbox.c.sent_at.is_(None),
                    t.outbox.c.failed_at.is_(None),
                    t.outbox.c.due_at <= now,
                )
                .order_by(t.outbox.c.id)
            ).all()
        return [
            OutboxRow(
                id=r.id,
                kind=r.kind,
                team=r.team,
                recipient=r.recipient,
                payload=json.loads(r.payload),
                created_at=r.created_at,
                attempts=r.attempts,
            )
            for r in rows
        ]

    def pending_count(self) -> int:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.outbox.c.id).where(
                    t.outbox.c.sent_at.is_(None), t.outbox.c.failed_at.is_(None)
                )
            ).all()
        return len(rows)

    def mark_sent(self, ids: Sequence[int], now: datetime) -> None:
        with self.engine.begin() as conn:
            for chunk in _chunks(list(ids), 500):
                conn.execute(
                    update(t.outbox)
                    .where(t.outbox.c.id.in_(chunk), t.outbox.c.sent_at.is_(None))
                    .values(sent_at=now, attempts=t.outbox.c.attempts + 1)
                )

    def defer(self, ids: Sequence[int], error: str, until: datetime | None, now: datetime) -> None:
        """Push rows back to ``until``; ``until=None`` gives up on them (permanent failure)."""
        with self.engine.begin() as conn:
            for chunk in _chunks(list(ids), 500):
                values: dict[str, Any] = {"attempts": t.outbox.c.attempts + 1, "last_error": error}
                if until is None:
                    values["failed_at"] = now
                else:
                    values["due_at"] = until
                conn.execute(update(t.outbox).where(t.outbox.c.id.in_(chunk)).values(**values))

    # --- daily reports ---------------------------------------------------------------
    def report_day(self, team: str, kind: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(t.reports.c.day).where(t.reports.c.team == team, t.reports.c.kind == kind)
            ).scalar_one_or_none()

    def claim_report(
        self,
        team: str,
        kind: str,
        day: str,
        event: tuple[str, str, str | None, dict[str, Any]],
        now: datetime,
    ) -> bool:
        """Record that ``day``'s report is enqueued; False if it already was."""
        with self.engine.begin() as conn:
            prev = conn.execute(
                select(t.reports.c.day).where(t.reports.c.team == team, t.reports.c.kind == kind)
            ).scalar_one_or_none()
            if prev is not None and prev >= day:
                return False
            if prev is None:
                conn.execute(insert(t.reports).values(team=team, kind=kind, day=day))
            else:
                conn.execute(
                    update(t.reports)
                    .where(t.reports.c.team == team, t.reports.c.kind == kind)
                    .values(day=day)
                )
            self._enqueue(conn, [event], now)
        return True

    # --- Graph change-notification subscriptions -------------------------------------
    def graph_subscriptions(self) -> list[GraphSubscriptionRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.graph_subscriptions).order_by(t.graph_subscriptions.c.calendar)
            ).all()
        return [GraphSubscriptionRow(**r._mapping) for r in rows]

    def save_graph_subscription(self, row: GraphSubscriptionRow) -> None:
        """Record (or replace) the one subscription of ``row.calendar``."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(t.graph_subscriptions).where(
                    (t.graph_subscriptions.c.calendar == row.calendar)
                    | (t.graph_subscriptions.c.subscription_id == row.subscription_id)
                )
            )
            conn.execute(insert(t.graph_subscriptions).values(**asdict(row)))

    def delete_graph_subscription(self, calendar: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(t.graph_subscriptions).where(t.graph_subscriptions.c.calendar == calendar)
            )


def _open_finding(m: Any) -> OpenFinding:
    return OpenFinding(
        key=m["key"],
        calendar=m["calendar"],
        rule=m["rule"],
        occurrence=m["occurrence"],
        summary=m["summary"],
        start=m["start"],
        start_utc=m["start_utc"],
        message=m["message"],
        first_seen=m["first_seen"],
    )


def utc_start(start: datetime | date) -> datetime:
    """A UTC instant to order and index visits by."""
    if isinstance(start, datetime):
        return start.astimezone(UTC)
    # All-day entries are stored at UTC midnight of their date: only used for ordering.
    return datetime.combine(start, time(0), tzinfo=UTC)


def _chunks(seq: Sequence[Any], n: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]
