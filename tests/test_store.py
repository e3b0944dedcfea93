"""The state database: migrations, atomic sync writes, only-if-unchanged flips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, inspect, text

from syncd.domain.model import RawItem
from syncd.sources.base import ChangeSet
from syncd.store import open_store, resolve_url

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_migrations_create_the_schema_and_are_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = open_store(url)
    store.close()
    store = open_store(url)  # second open: nothing to do, nothing broken
    tables = set(inspect(store.engine).get_table_names())
    assert {
        "calendars",
        "items",
        "visits",
        "findings",
        "outbox",
        "reports",
        "alembic_version",
    } <= tables


def test_sync_writes_and_locator_change(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    store.ensure_calendar("s1", "src", "/a/")
    item = RawItem(href="/a/1.ics", etag='"1"', kind="ical", data="BEGIN:VCALENDAR")
    store.apply_changes("s1", ChangeSet(full=True, upserts=[item], state="tok1"), NOW)
    assert store.known("s1") == {"/a/1.ics": '"1"'}
    assert store.calendar("s1").sync_state == "tok1"  # type: ignore[union-attr]
    store.apply_changes(
        "s1", ChangeSet(full=False, upserts=[], deletes=["/a/1.ics"], state="tok2"), NOW
    )
    assert store.known("s1") == {}
    store.apply_changes("s1", ChangeSet(full=True, upserts=[item], state="tok3"), NOW)
    # The worker's calendar moved: old items and the sync token must not be reused.
    state = store.ensure_calendar("s1", "src", "/b/")
    assert state.sync_state is None and store.known("s1") == {}


def test_blind_flag_flips_only_once(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    store.ensure_calendar("s1", "src", "/a/")
    assert store.set_blind("s1", NOW) is True
    assert store.set_blind("s1", NOW) is False
    assert store.set_blind("s1", None) is True
    assert store.set_blind("s1", None) is False


def test_relative_sqlite_paths_go_under_the_state_directory() -> None:
    env = {"STATE_DIRECTORY": "/var/lib/syncd"}
    assert resolve_url("sqlite:///syncd.db", env) == "sqlite:////var/lib/syncd/syncd.db"
    assert resolve_url("sqlite:////abs/x.db", env) == "sqlite:////abs/x.db"
    assert resolve_url("postgresql://h/db", env) == "postgresql://h/db"
    assert resolve_url("sqlite:///syncd.db", {}) == "sqlite:///syncd.db"


def test_0003_drops_visit_data_keeps_the_rows_and_adds_outbox_claims(tmp_path: Path) -> None:
    """A store made before 0003 upgrades in place: rows and the start index survive."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    engine = create_engine(url)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("syncd.store") / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
        conn.execute(
            text(
                "INSERT INTO visits (calendar, occurrence, start_utc, data, seen_at)"
                " VALUES ('s1', 'v1', '2026-12-01 09:00:00', '{}', '2026-12-01 08:00:00')"
            )
        )
    engine.dispose()
    store = open_store(url)
    columns = {c["name"] for c in inspect(store.engine).get_columns("visits")}
    assert "data" not in columns and {"calendar", "occurrence", "start_utc"} <= columns
    assert "ix_visits_start" in {i["name"] for i in inspect(store.engine).get_indexes("visits")}
    assert "claimed_until" in {c["name"] for c in inspect(store.engine).get_columns("outbox")}
    assert store.count_visits(["s1"], NOW - timedelta(hours=1), NOW + timedelta(hours=1)) == 1
