"""CalDAV backend: RFC 6578 sync-collection, with a getctag/getetag fallback.

A no-change cycle costs exactly one request per calendar (the sync-collection REPORT with
the stored token, or the getctag PROPFIND on servers without sync support). Changed items
are fetched with one calendar-multiget REPORT per calendar, never one GET per item.

Thread-safety: the engine syncs several calendars of one source at once. Each ``sync``
checks a DAVClient out of a small pool and returns it afterwards, so a client (and its
HTTP session, auth state and request counter) is only ever used by one thread at a time;
the pool grows to the engine's concurrency and no further.

State (opaque to the engine): JSON ``{"token": ...}`` in sync-collection mode or
``{"ctag": ...}`` in fallback mode.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urljoin, urlsplit

from caldav.collection import Calendar
from caldav.davclient import DAVClient
from caldav.elements import dav
from caldav.elements.base import BaseElement
from caldav.lib import error as caldav_error
from caldav.lib.http_sync import USE_NIQUESTS
from caldav.lib.http_sync import requests as http
from pydantic import Field, field_validator

from syncd.domain.model import RawItem
from syncd.errors import AuthError, SourceError
from syncd.secrets import SecretRef
from syncd.sources._common import check_url, deleted
from syncd.sources._deadline import Calls, clamp, deadline_field
from syncd.sources._tls import tls_failure
from syncd.sources._watch import watch_session
from syncd.sources.base import ChangeSet, Source, SourceOptions, Window

log = logging.getLogger(__name__)

_MULTIGET_BATCH = 1000
"""Hrefs per calendar-multiget; bounds one reply's size on a first sync of a huge calendar."""

_TRANSIENT_4XX = frozenset({408, 409, 423, 425, 429})


class CalDavOptions(SourceOptions):
    url: str = Field(
        description="The server's CalDAV root, with its scheme: https://dav.example.org/dav/ "
        "(locators are resolved under it and may not leave its host)."
    )
    username: str | None = Field(
        default=None, description="User name to log in with; none sends no credentials."
    )
    password: SecretRef | None = Field(
        default=None, description="Where the password for username is kept."
    )
    verify_tls: bool = Field(
        default=True,
        description="Check the server's TLS certificate (turn off only for a lab server).",
    )
    ca_file: Path | None = Field(
        default=None,
        description="A PEM of the CA(s) that issued the server's certificate, instead of the "
        "default bundle; when set, it is checked even if verify_tls is false.",
    )
    timeout: float = Field(
        default=30,
        description="Seconds of silence from the server before a request is abandoned.",
    )
    deadline_seconds: float = deadline_field("the CalDAV server")
    auth_type: Literal["basic", "digest"] = Field(
        default="basic",
        description="HTTP auth scheme, set up front (not negotiated) when username is given. "
        "Baikal and other SabreDAV servers often want Digest; Radicale, Nextcloud: Basic.",
    )

    @field_validator("url")
    @classmethod
    def _has_scheme(cls, value: str) -> str:
        return check_url(value)


class _GetCTag(BaseElement):
    tag = "{http://calendarserver.org/ns/}getctag"


class _Expired(Exception):
    """The server no longer knows our sync token."""


class _NoSyncSupport(Exception):
    """The server does not do RFC 6578 sync-collection on this calendar."""


@dataclass
class _Client:
    dav: Any  # caldav.DAVClient; Any because its methods return sync-or-async unions
    requests: int = 0


class CalDavSource(Source):
    kind = "caldav"
    Options = CalDavOptions

    def __init__(self, name: str, options: SourceOptions, secret: Callable[[str], str]):
        super().__init__(name, options, secret)
        if not isinstance(options, CalDavOptions):
            raise TypeError("CalDavSource needs CalDavOptions")
        self._opts = options
        self._pool: list[_Client] = []  # idle clients; at most one per concurrent sync
        self._lock = threading.Lock()
        self._generation = 0
        self._calls = Calls(name)

    # --- contract ---------------------------------------------------------------------
    def sync(
        self,
        locator: str,
        state: str | None,
        known: Mapping[str, str],
        window: Window,
    ) -> ChangeSet:
        url = self._calendar_url(locator)
        with (
            self._calls.call(self._opts.deadline_seconds),
            self._checkout() as client,
            self._translate(),
        ):
            before = client.requests
            calendar: Any = Calendar(client=client.dav, url=url)
            token, ctag = _parse_state(state)
            if ctag is not None:
                changes = self._sync_ctag(calendar, ctag, known)
            else:
                try:
                    changes = self._sync_token(calendar, token, known)
                except _NoSyncSupport:
                    changes = self._sync_ctag(calendar, None, known)
            changes.requests = client.requests - before
            return changes

    def abort(self) -> None:
        self._calls.abort()

    def close(self) -> None:
        self.abort()
        # Clients busy in a sync are closed when they come back; a later sync starts afresh.
        with self._lock:
            self._generation += 1
            idle, self._pool = self._pool, []
        for c in idle:
            c.dav.close()

    # --- sync-collection (RFC 6578) ---------------------------------------------------
    def _sync_token(self, calendar: Any, token: str | None, known: Mapping[str, str]) -> ChangeSet:
        full = token is None
        try:
            listing = self._report(calendar, token)
        except _Expired:
            full = True
            listing = self._report(calendar, None)
        if full and getattr(listing, "truncated", False):
            # A partial listing would make us "delete" everything it left out.
            raise SourceError(f"{self.name}: server truncated the calendar listing")
        present: dict[str, tuple[Any, str]] = {}
        gone: set[str] = set()
        tombstones = {str(u) for u in listing.deleted_urls}
        for obj in listing:
            href = _href(obj.url)
            # Radicale lists tombstones even on a token-less sync: never upsert those.
            if str(obj.url.canonical()) in tombstones:
                gone.add(href)
                continue
            present[href] = (obj.url, str(obj.props.get(dav.GetEtag.tag) or ""))
        changed = {h: url for h, (url, etag) in present.items() if not etag or known.get(h) != etag}
        upserts = self._multiget(calendar, changed, {h: e for h, (_, e) in present.items()})
        deletes = deleted(known, present) if full else sorted(h for h in gone if h in known)
        new_state = json.dumps({"token": str(listing.sync_token)}) if listing.sync_token else None
        return ChangeSet(full=full, upserts=upserts, deletes=deletes, state=new_state)

    def _report(self, calendar: Any, token: str | None) -> Any:
        try:
            # disable_fallback: otherwise caldav silently downloads everything with a fake
            # token, every cycle, for ever.
            return calendar.get_objects_by_sync_token(
                token, load_objects=False, disable_fallback=True
            )
        except caldav_error.DAVError as exc:
            preconditions = set(exc.preconditions)
            if dav.ValidSyncToken.tag in preconditions or (token and exc.status == 412):
                if token is None:
                    raise  # a token-less sync cannot be expired: something else is wrong
                log.info("%s: sync token expired, syncing calendar from scratch", self.name)
                raise _Expired from None
            if dav.SupportedReport.tag in preconditions or exc.status in (400, 405, 501):
                raise _NoSyncSupport from None
            if isinstance(exc, caldav_error.ReportError) and exc.status is None:
                raise _NoSyncSupport from None  # caldav's feature table says unsupported
            raise

    # --- getctag / getetag fallback ---------------------------------------------------
    def _sync_ctag(self, calendar: Any, ctag: str | None, known: Mapping[str, str]) -> ChangeSet:
        props = calendar.get_properties([_GetCTag()])
        current = props.get(_GetCTag.tag)
        if current is None:
            raise SourceError(
                f"{self.name}: server supports neither sync-collection nor getctag",
                permanent=True,
            )
        current = str(current)
        new_state = json.dumps({"ctag": current})
        if ctag is not None and ctag == current:
            return ChangeSet(full=False, state=new_state)
        response = calendar._query_properties([dav.GetEtag()], depth=1)
        own = _href(calendar.url)
        etags: dict[str, str] = {}
        urls: dict[str, Any] = {}
        for raw_href, found in response.expand_simple_props([dav.GetEtag()]).items():
            url = calendar.url.join(raw_href)
            href = _href(url)
            etag = found.get(dav.GetEtag.tag)
            if href.rstrip("/") == own.rstrip("/") or not etag:
                continue  # the collection itself, or a sub-collection
            etags[href] = str(etag)
            urls[href] = url
        changed = {h: urls[h] for h, e in etags.items() if known.get(h) != e}
        upserts = self._multiget(calendar, changed, etags)
        deletes = deleted(known, etags)
        return ChangeSet(full=True, upserts=upserts, deletes=deletes, state=new_state)

    # --- shared -----------------------------------------------------------------------
    def _multiget(
        self, calendar: Any, changed: Mapping[str, Any], listed_etags: Mapping[str, str]
    ) -> list[RawItem]:
        items: list[RawItem] = []
        hrefs = sorted(changed)
        for i in range(0, len(hrefs), _MULTIGET_BATCH):
            batch = [changed[h] for h in hrefs[i : i + _MULTIGET_BATCH]]
            for raw_href, data, tags in calendar._multiget(batch):
                if not data:
                    continue  # deleted since the listing; the next sync reports it
                href = _href(calendar.url.join(raw_href))
                etag = str(tags.get(dav.GetEtag.tag) or listed_etags.get(href, ""))
                items.append(RawItem(href=href, etag=etag, kind="ical", data=str(data)))
        return items

    def _calendar_url(self, locator: str) -> str:
        base = self._opts.url if self._opts.url.endswith("/") else self._opts.url + "/"
        url = urljoin(base, locator)
        if urlsplit(url)[:2] != urlsplit(base)[:2]:
            # An absolute locator on another host would get this source's password.
            raise SourceError(
                f"{self.name}: calendar locator points outside the configured server",
                permanent=True,
            )
        return url if url.endswith("/") else url + "/"

    @contextmanager
    def _checkout(self) -> Iterator[_Client]:
        with self._lock:
            client = self._pool.pop() if self._pool else None
            generation = self._generation
        if client is None:
            client = self._new_client()
        try:
            yield client
        except BaseException:
            # A failed client may hold a half-read connection: never lend it out again.
            generation = -1
            raise
        finally:
            with self._lock:
                keep = generation == self._generation
                if keep:
                    self._pool.append(client)
            if not keep:
                client.dav.close()

    def _new_client(self) -> _Client:
        opts = self._opts
        password = self._secret("password") if opts.password is not None else None
        verify: bool | str = str(opts.ca_file) if opts.ca_file is not None else opts.verify_tls
        # Any: caldav annotates timeout as int, but passes it to the HTTP library as is.
        make_client: Any = DAVClient
        dav_client = make_client(
            url=opts.url,
            username=opts.username,
            password=password,
            # Pre-set, not negotiated: saves a 401 round trip per new client. caldav does
            # not renegotiate once a scheme is set, hence the option.
            auth_type=opts.auth_type if opts.username else None,
            timeout=opts.timeout,
            ssl_verify_cert=verify,
            enable_rfc6764=False,
        )
        if USE_NIQUESTS:
            # No HTTP/3: a QUIC (UDP) socket cannot be shut down under a blocked reader.
            dav_client.session.close()
            dav_client.session = http.Session(disable_http3=True)
        client = _Client(dav=dav_client)
        session: Any = dav_client.session
        watch_session(session)  # a stalled request can be cut (syncd.sources._deadline)
        # This machine (and many hosts) set REQUESTS_CA_BUNDLE / proxies; we verify TLS
        # only as configured, and never send credentials through an ambient proxy.
        session.trust_env = False
        inner = session.request

        def counted(*args: Any, **kwargs: Any) -> Any:
            client.requests += 1
            kwargs["timeout"] = clamp(kwargs.get("timeout"))
            return inner(*args, **kwargs)

        session.request = counted
        return client

    @contextmanager
    def _translate(self) -> Iterator[None]:
        """Library errors -> syncd errors; messages name the source and status only."""
        name = self.name
        try:
            yield
        except SourceError:
            raise
        except caldav_error.RateLimitError as exc:
            log.debug("%s: rate limited", name, exc_info=True)
            raise SourceError(
                f"{name}: server busy (HTTP {exc.status or 429})",
                permanent=False,
                retry_after=exc.retry_after_seconds,
            ) from None
        except caldav_error.AuthorizationError as exc:
            log.debug("%s: authorization error", name, exc_info=True)
            if exc.status == 403:
                raise AuthError(f"{name}: permission denied by server (HTTP 403)") from None
            raise AuthError(f"{name}: server rejected the credentials (HTTP 401)") from None
        except caldav_error.NotFoundError:
            log.debug("%s: not found", name, exc_info=True)
            raise SourceError(f"{name}: calendar not found (HTTP 404)", permanent=True) from None
        except caldav_error.DAVError as exc:
            log.debug("%s: DAV error", name, exc_info=True)
            status = exc.status
            if status is None:
                raise SourceError(
                    f"{name}: unexpected reply from server", permanent=False
                ) from None
            permanent = 400 <= status < 500 and status not in _TRANSIENT_4XX
            raise SourceError(
                f"{name}: server answered HTTP {status}", permanent=permanent
            ) from None
        except http.exceptions.SSLError as exc:
            log.debug("%s: TLS error", name, exc_info=True)
            tls = tls_failure(exc) or "the TLS handshake failed"
            raise SourceError(f"{name}: {tls}", permanent=True) from None
        except http.exceptions.Timeout:
            log.debug("%s: timeout", name, exc_info=True)
            raise SourceError(f"{name}: server timed out", permanent=False) from None
        except (http.exceptions.ConnectionError, OSError) as exc:
            log.debug("%s: connection error", name, exc_info=True)
            wrapped = tls_failure(exc)  # a TLS failure wrapped in a connection error
            if wrapped is not None:
                raise SourceError(f"{name}: {wrapped}", permanent=True) from None
            raise SourceError(f"{name}: cannot connect to server", permanent=False) from None
        except Exception as exc:
            # caldav can raise plain exceptions on malformed XML; never leak them or their
            # text (which may quote calendar data) to the engine.
            log.debug("%s: unexpected CalDAV client error", name, exc_info=True)
            raise SourceError(
                f"{name}: unexpected CalDAV client error ({type(exc).__name__})",
                permanent=False,
            ) from None


def _href(url: Any) -> str:
    """The item's identity: its unquoted URL path (servers differ in what they %-encode)."""
    return unquote(urlsplit(str(url)).path)


def _parse_state(state: str | None) -> tuple[str | None, str | None]:
    """(sync token, ctag); (None, None) for no state or one we cannot read."""
    if not state:
        return None, None
    try:
        data = json.loads(state)
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    token = data.get("token")
    ctag = data.get("ctag")
    return (
        token if isinstance(token, str) and token else None,
        ctag if isinstance(ctag, str) else None,
    )
