"""Harnesses over real CalDAV servers (Radicale, Xandikos), written to with the caldav client.

Each harness gets its own account on the shared session server, so breaking its password
or expiring its tokens touches no other test.
"""

from __future__ import annotations

import shutil
import uuid
from typing import Any
from urllib.parse import quote

from caldav.davclient import DAVClient

from syncd.secrets import SecretRef
from syncd.sources.base import Source
from syncd.sources.caldav import CalDavOptions, CalDavSource

from ..servers import SharedServer
from . import EventSpec
from .ical_build import spec_to_ical


class CalDavHarness:
    kind = "caldav"

    def __init__(self, server: SharedServer):
        self.server = server
        self.user, self.password = server.new_user(server.kind[:3])
        self._client: Any = DAVClient(
            url=server.url,
            username=self.user,
            password=self.password,
            auth_type="basic",
            enable_rfc6764=False,
        )
        self._client.session.trust_env = False
        self._sources: list[Source] = []
        self._calendars: list[str] = []

    # Radicale: one namespace per user. Xandikos: a single principal, shared by all users.
    def _home(self) -> str:
        return f"{self.user}/" if self.server.kind == "radicale" else "user/calendars/"

    def make_calendar(self, name: str) -> str:
        locator = f"{self._home()}{name}-{uuid.uuid4().hex[:8]}/"
        r = self._client.mkcalendar(self.server.url + locator, "")
        if r.status not in (200, 201):
            raise RuntimeError(f"MKCALENDAR failed: {r.status}")
        self._calendars.append(locator)
        return locator

    def put(self, locator: str, event: EventSpec) -> None:
        r = self._client.put(
            self._object_url(locator, event.uid),
            spec_to_ical(event),
            {"Content-Type": "text/calendar; charset=utf-8"},
        )
        if r.status not in (200, 201, 204):
            raise RuntimeError(f"PUT failed: {r.status}")

    def delete(self, locator: str, uid: str) -> None:
        r = self._client.delete(self._object_url(locator, uid))
        if r.status not in (200, 204):
            raise RuntimeError(f"DELETE failed: {r.status}")

    def source(self) -> Source:
        src = CalDavSource(
            f"{self.server.kind}-test",
            CalDavOptions(
                url=self.server.url,
                username=self.user,
                password=SecretRef(env="SYNCD_TEST_UNUSED"),
            ),
            self._secret,
        )
        self._sources.append(src)
        return src

    def _secret(self, field: str) -> str:
        assert field == "password"
        return self.password

    def break_auth(self) -> None:
        # The server side changes (a rotated password), as in production.
        self.server.set_password(self.user, "rotated-" + uuid.uuid4().hex)

    def restore_auth(self) -> None:
        self.server.set_password(self.user, self.password)

    def expire_state(self) -> None:
        if self.server.kind != "radicale":
            raise NotImplementedError(
                "Xandikos sync tokens are git commits and cannot be expired from outside"
            )
        # Radicale keeps one file per sync token it handed out; without it a token is unknown
        # (403 DAV:valid-sync-token) unless the calendar is still in exactly that state.
        root = self.server.storage_dir / "collections" / "collection-root"
        for locator in self._calendars:
            shutil.rmtree(root / locator / ".Radicale.cache" / "sync-token", ignore_errors=True)

    def close(self) -> None:
        for src in self._sources:
            src.close()
        self._client.close()

    def _object_url(self, locator: str, uid: str) -> str:
        return f"{self.server.url}{locator}{quote(uid, safe='')}.ics"


def expected_href(locator: str, uid: str) -> str:
    """The href CalDavSource reports for an object this harness stored."""
    return f"/{locator}{uid}.ics"
