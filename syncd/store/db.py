"""The store: every read and write of syncd's state, and nothing else.

This module opens the database (URL resolution, SQLite pragmas, migrations) and composes
:class:`Store` from one part per aggregate: calendars and items, findings and visits, the
outbox, daily reports, Graph subscriptions. Writes that must happen together (items and the
sync state that describes them; new findings and the outbox rows announcing them) share one
transaction, so a crash leaves either the old state or the new one.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError

from syncd.errors import StoreError
from syncd.store.calendars import Calendars
from syncd.store.findings import Findings
from syncd.store.outbox import Outbox
from syncd.store.reports import Reports
from syncd.store.subscriptions import Subscriptions


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


class Store(Calendars, Findings, Outbox, Reports, Subscriptions):
    def __init__(self, engine: Engine):
        self.engine = engine

    def migrate(self) -> None:
        migrations = resources.files("syncd.store") / "migrations"
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(migrations))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def close(self) -> None:
        self.engine.dispose()
