"""Exchange Server calendars over Exchange Web Services (EWS), through exchangelib.

One service account reads every staff mailbox's calendar, by ApplicationImpersonation or
delegate (Reviewer) access; the locator is the staff mailbox's primary SMTP address.

Sync design (the trade-off): SyncFolderItems is cheap and incremental but reports series
masters only, never the occurrences a recurring visit actually has. So it is used only to
learn *whether* anything changed. When something did (or on the first sync, or when the
checking window moved), the CalendarView for the window is read again in full and every
occurrence emitted, with ``full=True`` so the caller deletes what disappeared. A quiet
calendar costs one SyncFolderItems request per cycle; a changed one costs a FindItem and a
GetItem per page of the window too. Reading the window whole is what makes recurrence
exceptions, moved occurrences and deletions come out right without mirroring Exchange's
recurrence engine here.

Throttling: exchangelib runs with its FailFast policy, so ``ErrorServerBusy`` surfaces at
once and becomes ``SourceError(retry_after=BackOffMilliseconds/1000)``; the engine pushes
this calendar back instead of a worker thread sleeping inside the library (which would hold
up every other staff member's checks, and cannot be tested without real sleeps). Nor does it
shrink its session pool on errors (see :mod:`syncd.sources.ews.connection`). Each sync runs
under ``deadline_seconds`` (:mod:`syncd.sources._deadline`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo

from syncd.domain.model import RawItem
from syncd.errors import SourceError
from syncd.sources._common import deleted
from syncd.sources._deadline import Calls
from syncd.sources.base import ChangeSet, Source, SourceOptions, Window
from syncd.sources.ews.connection import Connection
from syncd.sources.ews.errors import translate
from syncd.sources.ews.mapping import FIELDS, ITEM_ERRORS, Unreadable, aware, problem_raw, to_raw
from syncd.sources.ews.options import EwsOptions

log = logging.getLogger(__name__)

_STATE_VERSION = 1
_UTC = ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class _State:
    sync: str
    window: tuple[str, str]

    def dump(self) -> str:
        return json.dumps({"v": _STATE_VERSION, "sync": self.sync, "window": list(self.window)})

    @classmethod
    def load(cls, text: str | None) -> _State | None:
        if not text:
            return None
        try:
            d = json.loads(text)
            if d.get("v") != _STATE_VERSION:
                return None
            start, end = d["window"]
            return cls(sync=str(d["sync"]), window=(str(start), str(end)))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None  # foreign or damaged state: start again, as after an expired one


def _window_key(window: Window) -> tuple[str, str]:
    return (window.start.astimezone(UTC).isoformat(), window.end.astimezone(UTC).isoformat())


class EwsSource(Source):
    kind = "ews"
    Options = EwsOptions

    def __init__(self, name: str, options: SourceOptions, secret: Callable[[str], str]):
        super().__init__(name, options, secret)
        if not isinstance(options, EwsOptions):
            raise TypeError("EwsSource needs EwsOptions")
        self.opts: EwsOptions = options
        self._conn = Connection(name, options, secret)
        self._calls = Calls(name)

    def abort(self) -> None:
        self._calls.abort()

    def close(self) -> None:
        self.abort()
        self._conn.close()

    def sync(
        self,
        locator: str,
        state: str | None,
        known: Mapping[str, str],
        window: Window,
    ) -> ChangeSet:
        log.debug("EWS sync of %s", locator)
        with self._calls.call(self.opts.deadline_seconds):
            try:
                return self._sync(locator, state, known, window)
            except SourceError:
                raise
            except Exception as exc:
                raise translate(self.name, self.opts.access_type, exc) from None

    def _sync(
        self, locator: str, state: str | None, known: Mapping[str, str], window: Window
    ) -> ChangeSet:
        from exchangelib.errors import ErrorInvalidSyncStateData

        account, folder = self._conn.calendar(locator)
        previous = _State.load(state)
        counter = [0]
        try:
            changed, sync_state = self._changes(account, folder, previous, counter)
        except ErrorInvalidSyncStateData:
            log.info("%s: Exchange sync state expired; reading the calendar again", self.name)
            previous = None
            changed, sync_state = self._changes(account, folder, None, counter)
        new_state = _State(sync=sync_state, window=_window_key(window)).dump()
        if previous is not None and not changed and previous.window == _window_key(window):
            return ChangeSet(full=False, state=new_state, requests=counter[0])
        present = self._read_window(account, folder, window, counter)
        upserts = [item for href, item in present.items() if known.get(href) != item.etag]
        return ChangeSet(
            full=True,
            upserts=upserts,
            deletes=deleted(known, present),
            state=new_state,
            requests=counter[0],
        )

    def _changes(
        self, account: Any, folder: Any, previous: _State | None, counter: list[int]
    ) -> tuple[bool, str]:
        """Page through SyncFolderItems; return (anything changed, the final sync state)."""
        from exchangelib.items import ID_ONLY
        from exchangelib.services import SyncFolderItems

        sync_state = previous.sync if previous is not None else None
        changed = False
        while True:
            svc = SyncFolderItems(account=account)
            counter[0] += 1
            for change in svc.call(
                folder=folder,
                shape=ID_ONLY,
                additional_fields=set(),
                sync_state=sync_state,
                ignore=None,
                max_changes_returned=self.opts.sync_page_size,
                sync_scope=None,
            ):
                if isinstance(change, Exception):
                    raise change
                changed = True
            if not isinstance(svc.sync_state, str) or not svc.sync_state:
                raise SourceError(f"{self.name}: Exchange sent no sync state")
            if svc.includes_last_item_in_range or svc.sync_state == sync_state:
                return changed, svc.sync_state
            sync_state = svc.sync_state

    def _read_window(
        self, account: Any, folder: Any, window: Window, counter: list[int]
    ) -> dict[str, RawItem]:
        present: dict[str, RawItem] = {}
        for row, item in self._view(account, folder, window, counter):
            if isinstance(item, Exception):
                # Deleted between FindItem and GetItem: SyncFolderItems reports it next cycle.
                if type(item).__name__ == "ErrorItemNotFound":
                    continue
                # A corrupt item is one entry the monitor must hear about, not a reason to
                # stop tracking the rest of the calendar. Anything else fails the calendar.
                if type(item).__name__ not in ITEM_ERRORS:
                    raise item
                raw = problem_raw(
                    row,
                    f"Exchange could not return this entry ({type(item).__name__}); "
                    "open it in Outlook and save it again",
                )
            else:
                try:
                    raw = to_raw(item)
                except Exception as exc:
                    log.debug("EWS item unreadable", exc_info=exc)
                    raw = problem_raw(
                        row,
                        str(exc)
                        if isinstance(exc, Unreadable)
                        else f"entry could not be read ({type(exc).__name__})",
                    )
            present[raw.href] = raw
        return present

    def _view(
        self, account: Any, folder: Any, window: Window, counter: list[int]
    ) -> Iterator[tuple[Any, Any]]:
        """Every item in the window as (CalendarView row, GetItem result or its error):
        CalendarView pages, each completed by one GetItem.

        CalendarView has no offset paging: a full page means "more after this", and the
        next page starts at the last start seen (entries overlapping it come again and
        are de-duplicated by ItemId).
        """
        from exchangelib import EWSDateTime

        page = self.opts.view_page_size
        start = window.start.astimezone(_UTC)
        end = EWSDateTime.from_datetime(window.end.astimezone(_UTC))
        seen: set[str] = set()
        while True:
            counter[0] += 1
            rows = list(
                folder.view(
                    start=EWSDateTime.from_datetime(start),
                    end=end,
                    max_items=page,
                ).only("start", "subject")
            )
            for r in rows:
                if isinstance(r, Exception):
                    raise r
            fresh = [r for r in rows if r.id not in seen]
            seen.update(r.id for r in fresh)
            if fresh:
                counter[0] += math.ceil(len(fresh) / 100)  # GetItem chunk size
                # GetItem answers in request order, errors in place of the items they concern.
                yield from zip(
                    fresh,
                    account.fetch(ids=fresh, folder=folder, only_fields=FIELDS),
                    strict=True,
                )
            if len(rows) < page:
                return
            last_start = max(aware(r.start, _UTC) for r in rows)
            if last_start <= start:
                # A full page of entries all starting at (or before) the cursor: widen it.
                if page >= 1000:
                    raise SourceError(f"{self.name}: more than 1000 calendar entries at one moment")
                page = min(page * 2, 1000)
                continue
            start = last_start
