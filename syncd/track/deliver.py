"""Step 4 of the cycle: send what the outbox holds (one digest per team, morning reports,
nudges), retrying failures with back-off and giving up on permanent refusals."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from syncd.config import Config
from syncd.domain.events import Event, MorningReport, Nudge
from syncd.errors import NotifyError
from syncd.notify.base import Message, Notifier
from syncd.notify.render import render_digest, render_morning, render_nudge
from syncd.store import OutboxRow, Store
from syncd.track.context import CycleReport

log = logging.getLogger(__name__)

RETRY_DELAYS = (60, 120, 300, 600, 1800)
"""Seconds before re-sending a failed notification; the last repeats until it goes."""


CLAIM_LEASE = timedelta(minutes=5)
"""How long a sender holds the rows it claimed; a crashed sender's rows go out again after."""


def deliver(
    config: Config,
    store: Store,
    notifier: Notifier | None,
    now: datetime,
    report: CycleReport,
    lease: timedelta = CLAIM_LEASE,
) -> None:
    due = store.due(now)
    if not due:
        return
    if notifier is None:
        log.error(
            "%d notifications waiting but no [smtp] is configured: nobody is being told",
            len(due),
        )
        report.send_failures += len(due)
        return
    send(config, store, notifier, claim(store, due, now, lease), now, report)


def claim(
    store: Store, due: Sequence[OutboxRow], now: datetime, lease: timedelta = CLAIM_LEASE
) -> list[OutboxRow]:
    """The rows of ``due`` this sender now holds; another sender may hold the rest."""
    got = set(store.claim([r.id for r in due], now, now + lease))
    return [r for r in due if r.id in got]


def send(
    config: Config,
    store: Store,
    notifier: Notifier,
    claimed: Sequence[OutboxRow],
    now: datetime,
    report: CycleReport,
) -> None:
    """Send claimed rows: one digest per team and recipient, morning reports and nudges."""
    teams = {t.name: t for t in config.teams}
    # Rows already given a message key (a send that may have reached the server before a
    # crash) go out together again under that key, so the copy carries the same Message-ID.
    groups: dict[tuple[str, str | None, str, str | None], list[OutboxRow]] = defaultdict(list)
    for row in claimed:
        groups[(row.team, row.recipient, _message_kind(row.event), row.message_key)].append(row)
    for (team_name, recipient, kind, _key), rows in groups.items():
        team = teams.get(team_name)
        to = [recipient] if recipient else (team.monitors if team else [])
        if not to:
            store.defer([r.id for r in rows], "team no longer configured", None, now)
            log.error("dropping %d notifications for a team no longer configured", len(rows))
            continue
        messages = _render(team_name, kind, rows, to)
        for msg, ids in messages:
            attempts = max(r.attempts for r in rows if r.id in ids)
            key = next((r.message_key for r in rows if r.id in ids and r.message_key), None)
            if key is None:
                key = message_key(ids)
                store.set_message_key(ids, key)  # before the send: see schema.outbox
            try:
                notifier.send(replace(msg, key=key))
            except NotifyError as exc:
                report.send_failures += 1
                if exc.permanent:
                    log.error("giving up on a %s message for team %s: %s", kind, team_name, exc)
                    store.defer(ids, str(exc), None, now)
                else:
                    delay = RETRY_DELAYS[min(attempts, len(RETRY_DELAYS) - 1)]
                    log.error(
                        "could not send a %s message for team %s (%s); retrying in %ds",
                        kind,
                        team_name,
                        exc,
                        delay,
                    )
                    store.defer(ids, str(exc), now + timedelta(seconds=delay), now)
                continue
            store.mark_sent(ids, now)
            report.sent += 1


def message_key(ids: Sequence[int]) -> str:
    """The message's idempotency key: the same outbox rows give the same key, so a re-send
    after a crash can be recognised (and dropped) by the receiving system."""
    return "outbox-" + "-".join(str(i) for i in ids)


def _message_kind(event: Event) -> str:
    """Morning reports and nudges go one by one; everything else into the team's digest."""
    match event:
        case MorningReport():
            return "morning"
        case Nudge():
            return "nudge"
        case _:
            return "digest"


def _render(
    team: str, kind: str, rows: Sequence[OutboxRow], to: Sequence[str]
) -> list[tuple[Message, list[int]]]:
    if kind == "morning":
        return [
            (render_morning(team, r.event, to=to), [r.id])
            for r in rows
            if isinstance(r.event, MorningReport)
        ]
    if kind == "nudge":
        nudges = [r.event for r in rows if isinstance(r.event, Nudge)]
        return [(render_nudge(nudges[0].staff_name, nudges, to=to), [r.id for r in rows])]
    return [(render_digest(team, [r.event for r in rows], to=to), [r.id for r in rows])]
