"""One calendar's ``calendarView/delta`` round, as pure bookkeeping over the pages.

The state keeps the whole ``@odata.deltaLink`` plus the window it was made for: a new
window starts a new round (``full=True``, deletes = known - present). ``@removed`` rows
(reason ``deleted``, or ``changed`` when moved out of the window) become deletes; the same
change delivered twice is harmless (etags are compared with ``known``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from syncd.domain.model import ChangeSet, ItemKind, RawItem, Window, problem_data
from syncd.errors import SourceError, SyncStateExpired
from syncd.sources._common import deleted
from syncd.sources.graph.mapping import etag_of, to_occurrence

_STATE_VERSION = 1


class Round:
    """One calendar's delta round: the pages seen so far and where to read next.

    ``check_link`` vets every link Graph hands back; ``initial_url`` starts a round.
    """

    def __init__(
        self,
        name: str,
        locator: str,
        state: str | None,
        known: Mapping[str, str],
        window: Window,
        *,
        initial_url: Callable[[str, Window], str],
        check_link: Callable[[Any], str],
    ):
        self.name, self.locator, self.state, self.known, self.window = (
            name,
            locator,
            state,
            known,
            window,
        )
        self._initial_url, self._check_link = initial_url, check_link
        link = _load_state(state, window)
        if link is not None:
            try:
                link = check_link(link)
            except SourceError:
                link = None  # state from another configuration: start again
        self.full = link is None
        self.url = link or initial_url(locator, window)
        self.items: dict[str, dict[str, Any] | None] = {}
        self.delta_link = ""
        self.requests = 0
        self.restarts = 0
        self.throttled = 0

    def restart(self) -> None:
        if self.restarts >= 2:
            raise SyncStateExpired(f"{self.name}: Graph keeps expiring the delta round")
        self.restarts += 1
        self.full = True
        self.items.clear()
        self.url = self._initial_url(self.locator, self.window)

    def absorb(self, page: Any) -> bool:
        """Take one delta page; True when the round is complete."""
        name = self.name
        values = page.get("value") if isinstance(page, dict) else None
        if not isinstance(values, list):
            raise SourceError(f"{name}: Graph delta page has no value array")
        for row in values:
            if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not row["id"]:
                raise SourceError(f"{name}: Graph delta page has a row without an id")
            if "@removed" in row:
                self.items[row["id"]] = None
            elif row.get("type") != "seriesMaster":  # calendarView lists instances only
                self.items[row["id"]] = row
        if page.get("@odata.nextLink"):
            self.url = self._check_link(page["@odata.nextLink"])
            return False
        if page.get("@odata.deltaLink"):
            self.delta_link = self._check_link(page["@odata.deltaLink"])
            return True
        raise SourceError(f"{name}: Graph delta page has neither nextLink nor deltaLink")

    def result(self) -> ChangeSet:
        upserts: list[RawItem] = []
        for href, row in self.items.items():
            if row is None:
                continue
            etag = etag_of(row) or _content_etag(row)
            if self.known.get(href) == etag:
                continue  # replayed or unchanged
            kind: ItemKind = "occurrence"
            try:
                data = to_occurrence(row).to_json()
            except Exception as exc:
                # One entry we cannot read must not blind the monitor to the rest of the
                # calendar: it becomes an unreadable-entry finding under its own href, so the
                # corrected entry replaces it.
                kind, data = "problem", _problem(row, exc)
            upserts.append(RawItem(href=href, etag=etag, kind=kind, data=data))
        if self.full:
            deletes = deleted(self.known, {h for h, row in self.items.items() if row is not None})
        else:
            deletes = [h for h, row in self.items.items() if row is None and h in self.known]
        state = json.dumps(
            {
                "v": _STATE_VERSION,
                "delta": self.delta_link,
                "window": [zulu(self.window.start), zulu(self.window.end)],
            }
        )
        return ChangeSet(
            full=self.full, upserts=upserts, deletes=deletes, state=state, requests=self.requests
        )


def _problem(row: Mapping[str, Any], exc: Exception) -> str:
    series = row.get("seriesMasterId")
    uid = series if isinstance(series, str) and series else str(row["id"])
    subject = row.get("subject")
    # graph_map's messages name the field, never its value; anything else only its type.
    message = (
        str(exc)
        if isinstance(exc, SourceError)
        else f"entry could not be read ({type(exc).__name__})"
    )
    return problem_data(uid, subject.strip() if isinstance(subject, str) else "", message)


def _load_state(state: str | None, window: Window) -> str | None:
    if not state:
        return None
    try:
        doc = json.loads(state)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("v") != _STATE_VERSION:
        return None
    if doc.get("window") != [zulu(window.start), zulu(window.end)]:
        return None  # the window moved: a delta link only ever covers its own window
    link = doc.get("delta")
    return link if isinstance(link, str) and link else None


def zulu(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("window and expiry datetimes must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def user_segment(locator: str) -> str:
    # Guest UPNs hold '#', and any of '/?%' would change the path: encode all but '@'.
    return quote(locator.strip(), safe="@")


def _content_etag(row: Mapping[str, Any]) -> str:
    blob = json.dumps(row, sort_keys=True, ensure_ascii=False).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()
