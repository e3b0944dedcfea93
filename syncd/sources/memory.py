"""An in-memory source: the reference implementation of the contract and the test fake.

Tests (and the Hypothesis stateful test) put items in, take them out, and make the
"server" fail on demand; the daemon syncs it exactly like a real server.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

from syncd.domain.model import RawItem
from syncd.errors import SourceError
from syncd.sources._common import deleted
from syncd.sources.base import ChangeSet, Source, SourceOptions, Window


class MemorySource(Source):
    kind = "memory"

    def __init__(
        self,
        name: str = "memory",
        options: SourceOptions | None = None,
        secret: Callable[[str], str] | None = None,
    ):
        super().__init__(name, options or SourceOptions(), secret or (lambda _f: ""))
        self.calendars: dict[str, dict[str, RawItem]] = {}
        self.fail: SourceError | None = None
        """When set, every sync raises it: a server that is down or refuses us."""
        self._log: dict[str, list[tuple[int, str]]] = {}
        self._seq = itertools.count(1)
        self._epoch = 0

    # --- test/demo side -------------------------------------------------------------
    def put(self, locator: str, href: str, data: str, kind: str = "ical") -> None:
        cal = self.calendars.setdefault(locator, {})
        etag = f'"{next(self._seq)}"'
        cal[href] = RawItem(href=href, etag=etag, kind=kind, data=data)  # type: ignore[arg-type]
        self._log.setdefault(locator, []).append((int(etag.strip('"')), href))

    def delete(self, locator: str, href: str) -> None:
        self.calendars.get(locator, {}).pop(href, None)
        self._log.setdefault(locator, []).append((next(self._seq), href))

    def expire_tokens(self) -> None:
        """Invalidate every sync token handed out so far, as a server may."""
        self._epoch += 1

    # --- contract side ---------------------------------------------------------------
    def sync(
        self,
        locator: str,
        state: str | None,
        known: Mapping[str, str],
        window: Window,
    ) -> ChangeSet:
        if self.fail is not None:
            raise self.fail
        if locator not in self.calendars:
            raise SourceError(f"{self.name}: calendar not found", permanent=True)
        cal = self.calendars[locator]
        log = self._log.get(locator, [])
        head = log[-1][0] if log else 0
        token = f"{self._epoch}:{head}"
        since = _parse_token(state, self._epoch)
        if since is None:
            upserts = [item for item in cal.values() if known.get(item.href) != item.etag]
            deletes = deleted(known, cal)
            return ChangeSet(full=True, upserts=upserts, deletes=deletes, state=token, requests=1)
        touched = {href for seq, href in log if seq > since}
        upserts = [cal[h] for h in sorted(touched) if h in cal and known.get(h) != cal[h].etag]
        deletes = [h for h in sorted(touched) if h not in cal and h in known]
        return ChangeSet(full=False, upserts=upserts, deletes=deletes, state=token, requests=1)


def _parse_token(state: str | None, epoch: int) -> int | None:
    if not state:
        return None
    e, _, seq = state.partition(":")
    if not e.isdigit() or int(e) != epoch or not seq.isdigit():
        return None  # expired or foreign token: start again, as real servers make us do
    return int(seq)
