"""Two senders on one store: a row is claimed (update-if-unchanged, with a lease) before it
is sent, so each message goes once; a crashed sender's rows go again, with the same key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import update

from syncd.config import Config, parse_config
from syncd.errors import NotifyError
from syncd.notify.memory import MemoryNotifier
from syncd.sources.memory import MemorySource
from syncd.store import open_store
from syncd.store import schema as t
from syncd.track import deliver
from syncd.track.engine import RETRY_DELAYS, CycleReport, Engine
from tests.harness import EventSpec
from tests.harness.ical_build import spec_to_ical

LON = ZoneInfo("Europe/London")
NOW = datetime(2026, 12, 1, 6, 0, tzinfo=LON).astimezone(UTC)  # before the morning report


def _config(tmp_path: Path) -> Config:
    return parse_config(
        {
            "database": f"sqlite:///{tmp_path / 'state.db'}",
            "notify": {"settle_minutes": 0, "nudge_staff": True},
            "sources": [{"name": "mem", "kind": "memory"}],
            "teams": [
                {
                    "name": "North",
                    "monitors": ["duty@council.example"],
                    "staff": [
                        {
                            "id": "s1",
                            "name": "Amira Khan",
                            "email": "amira@council.example",
                            "calendar": {"source": "mem", "locator": "amira"},
                        }
                    ],
                }
            ],
        }
    )


class Team:
    """Findings queued by a cycle that could not send, then two senders on the same store."""

    def __init__(self, tmp_path: Path):
        self.config = _config(tmp_path)
        self.server = MemorySource()
        self.server.calendars = {"amira": {}}
        for uid, hour in (("v1", 10), ("v2", 14)):
            start = datetime(2026, 12, 1, hour, 0, tzinfo=LON)
            spec = EventSpec(
                uid=uid, summary="HV Patel", start=start, end=start + timedelta(hours=1)
            )
            self.server.put("amira", f"{uid}.ics", spec_to_ical(spec))
        producer = self.engine(None)
        producer.cycle(NOW)  # findings and their notifications queued, nothing sent
        producer.close()
        self.a, self.b = self.engine(MemoryNotifier()), self.engine(MemoryNotifier())

    def engine(self, notifier: MemoryNotifier | None) -> Engine:
        store = open_store(self.config.database)  # its own connection pool, like a process
        return Engine(self.config, store, notifier, sources={"mem": self.server})

    def sent(self, engine: Engine) -> list[str]:
        assert isinstance(engine.notifier, MemoryNotifier)
        return [m.subject for m in engine.notifier.sent]


def test_rows_claimed_by_one_sender_are_not_sent_by_the_other(tmp_path: Path) -> None:
    w = Team(tmp_path)
    due = w.a.store.due(NOW)
    assert {r.recipient for r in due} == {None, "amira@council.example"}
    claimed = deliver.claim(w.a.store, due, NOW)
    assert claimed == due
    w.b.deliver(NOW, CycleReport())  # b read the same due rows a moment later
    assert w.sent(w.b) == []
    assert deliver.claim(w.b.store, due, NOW) == []
    assert isinstance(w.a.notifier, MemoryNotifier)
    deliver.send(w.a.config, w.a.store, w.a.notifier, claimed, NOW, CycleReport())
    w.b.deliver(NOW + deliver.CLAIM_LEASE * 2, CycleReport())
    assert sorted(w.sent(w.a)) == [
        "Please complete 2 visit entries in your calendar",
        "[syncd] North: 2 visit entries incomplete",
    ]
    assert w.sent(w.b) == []
    assert w.a.store.pending_count() == 0


def test_a_crashed_senders_rows_go_again_after_the_lease_with_the_same_key(
    tmp_path: Path,
) -> None:
    w = Team(tmp_path)
    w.a.deliver(NOW, CycleReport())
    assert isinstance(w.a.notifier, MemoryNotifier)
    first = {m.subject: m for m in w.a.notifier.sent}
    # The crash: both messages went out but marking them sent never committed.
    with w.a.store.engine.begin() as conn:
        conn.execute(update(t.outbox).values(sent_at=None))
    w.b.deliver(NOW + timedelta(minutes=1), CycleReport())
    assert w.sent(w.b) == []  # a's lease still holds
    w.b.deliver(NOW + deliver.CLAIM_LEASE + timedelta(seconds=1), CycleReport())
    assert isinstance(w.b.notifier, MemoryNotifier)
    again = {m.subject: m for m in w.b.notifier.sent}
    assert again.keys() == first.keys()
    for subject, msg in again.items():
        assert msg.key is not None and msg.key.startswith("outbox-")
        assert msg == first[subject]  # same text, same key: the receiver can drop it
    assert len({m.key for m in again.values()}) == 2
    assert w.b.store.pending_count() == 0


def test_a_failed_send_releases_its_claim_for_the_retry(tmp_path: Path) -> None:
    w = Team(tmp_path)
    assert isinstance(w.a.notifier, MemoryNotifier)
    w.a.notifier.fail = NotifyError("smtp busy", permanent=False)
    w.a.deliver(NOW, CycleReport())
    assert w.a.notifier.sent == []
    w.b.deliver(NOW + timedelta(seconds=RETRY_DELAYS[0] + 1), CycleReport())
    assert len(w.sent(w.b)) == 2  # retried at the back-off, not held until the lease ends
