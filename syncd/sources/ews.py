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
up every other staff member's checks, and cannot be tested without real sleeps).
"""

from __future__ import annotations

import hashlib
import html.parser
import ipaddress
import json
import logging
import math
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import Field, model_validator

from syncd.domain.model import Occurrence, RawItem, organizer_address, problem_data
from syncd.errors import AuthError, SourceError, SyncdError
from syncd.secrets import SecretRef
from syncd.sources.base import ChangeSet, Source, SourceOptions, Window

log = logging.getLogger(__name__)

_VERSIONS: dict[str, tuple[int, ...]] = {
    "Exchange2010": (14, 0),
    "Exchange2010_SP1": (14, 1),
    "Exchange2010_SP2": (14, 2),
    "Exchange2013": (15, 0),
    "Exchange2013_SP1": (15, 0, 847),
    "Exchange2016": (15, 1),
    "Exchange2019": (15, 2),
}

ExchangeVersion = Literal[
    "Exchange2010",
    "Exchange2010_SP1",
    "Exchange2010_SP2",
    "Exchange2013",
    "Exchange2013_SP1",
    "Exchange2016",
    "Exchange2019",
]

# Everything the checks need, fetched by GetItem (Body is "complex": FindItem cannot return it).
_FIELDS = [
    "uid",
    "subject",
    "start",
    "end",
    "is_all_day",
    "location",
    "body",
    "categories",
    "organizer",
    "is_cancelled",
    "type",
    "original_start",
    "_start_timezone",
    "_end_timezone",
]

_STATE_VERSION = 1
_UTC = ZoneInfo("UTC")
# Per-item GetItem errors about the item's own data: that entry becomes an unreadable-entry
# finding. Every other per-item error (access, throttling) still fails the calendar.
_ITEM_ERRORS = frozenset(
    {
        "ErrorCorruptData",
        "ErrorItemCorrupt",
        "ErrorItemPropertyRequestFailed",
        "ErrorCalendarInvalidTimeZone",
        "ErrorCalendarInvalidRecurrence",
        "ErrorCalendarInvalidPropertyValue",
    }
)


class EwsOptions(SourceOptions):
    """``[[sources]]`` table for ``kind = "ews"``."""

    autodiscover: bool = False
    service_endpoint: str | None = None
    """e.g. https://mail.example.org/EWS/Exchange.asmx; required unless autodiscover."""
    version: ExchangeVersion | None = None
    """Skips version guessing (one request fewer, and no surprises behind load balancers)."""
    access_type: Literal["impersonation", "delegate"] = "impersonation"
    auth_type: Literal["ntlm", "basic", "oauth"] = "ntlm"
    username: str = ""
    password: SecretRef | None = None
    client_id: str = ""
    tenant_id: str = ""
    client_secret: SecretRef | None = None
    timeout: float = Field(default=60.0, gt=0)
    max_connections: int = Field(default=4, ge=1, le=32)
    """Concurrent connections to Exchange (exchangelib's default is one)."""
    sync_page_size: int = Field(default=512, ge=1, le=512)
    """MaxChangesReturned per SyncFolderItems request (512 is the EWS maximum)."""
    view_page_size: int = Field(default=500, ge=1, le=1000)
    """MaxEntriesReturned per CalendarView request (Exchange's EWSFindCountLimit is 1000)."""

    @model_validator(mode="after")
    def _consistent(self) -> EwsOptions:
        if self.autodiscover == (self.service_endpoint is not None):
            raise ValueError("give exactly one of autodiscover = true or service_endpoint")
        if self.service_endpoint is not None:
            parts = urlsplit(self.service_endpoint)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise ValueError("service_endpoint must be an https:// URL")
            if parts.scheme == "http" and not _is_loopback(parts.hostname):
                raise ValueError("service_endpoint must use https (credentials travel with it)")
        if self.auth_type == "oauth":
            if not (self.client_id and self.tenant_id and self.client_secret):
                raise ValueError("auth_type oauth needs client_id, tenant_id and client_secret")
        elif not (self.username and self.password):
            raise ValueError(f"auth_type {self.auth_type} needs username and password")
        return self


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
        self._config: Any = None
        self._accounts: dict[str, Any] = {}
        # The engine syncs several calendars of one source at once, from worker threads.
        self._lock = threading.Lock()

    # --- connection (lazy) -----------------------------------------------------------
    def _configuration(self) -> Any:
        if self._config is not None:
            return self._config
        from exchangelib import (
            BASIC,
            NTLM,
            OAUTH2,
            Build,
            Configuration,
            Credentials,
            FailFast,
            OAuth2Credentials,
            Version,
        )

        o = self.opts
        try:
            if o.auth_type == "oauth":
                credentials: Any = OAuth2Credentials(
                    client_id=o.client_id,
                    client_secret=self._secret("client_secret"),
                    tenant_id=o.tenant_id,
                )
            else:
                credentials = Credentials(o.username, self._secret("password"))
        except SourceError:
            raise
        except SyncdError as exc:
            # A secret that cannot be read is a configuration fault a human must fix.
            raise SourceError(f"{self.name}: {exc}", permanent=True) from None
        auth = {"ntlm": NTLM, "basic": BASIC, "oauth": OAUTH2}[o.auth_type]
        version = Version(build=Build(*_VERSIONS[o.version])) if o.version else None
        self._config = Configuration(
            credentials=credentials,
            service_endpoint=o.service_endpoint,
            auth_type=auth,
            version=version,
            retry_policy=FailFast(),
            max_connections=o.max_connections,
        )
        return self._config

    def _calendar(self, locator: str) -> tuple[Any, Any]:
        """(account, calendar folder) for a mailbox; no request unless autodiscover is on."""
        with self._lock:
            cached = self._accounts.get(locator)
            if cached is None:
                cached = self._accounts[locator] = self._open(locator)
            return cached

    def _open(self, locator: str) -> tuple[Any, Any]:
        from exchangelib import DELEGATE, IMPERSONATION, Account
        from exchangelib import UTC as EWS_UTC
        from exchangelib.folders import Calendar, DistinguishedFolderId, Root
        from exchangelib.properties import Mailbox

        if "@" not in locator:
            raise SourceError(f"{self.name}: locator is not a mailbox address", permanent=True)
        config = self._configuration()
        account = Account(
            primary_smtp_address=locator,
            access_type=IMPERSONATION if self.opts.access_type == "impersonation" else DELEGATE,
            config=config,
            autodiscover=self.opts.autodiscover,
            default_timezone=EWS_UTC,
            locale="en_GB",
        )
        account.protocol.TIMEOUT = self.opts.timeout
        # Addressing the calendar by its distinguished id skips GetFolder on the mailbox
        # root, which a delegate holding only Reviewer on the calendar may not read.
        folder = Calendar(
            root=Root(account=account),
            _distinguished_id=DistinguishedFolderId(
                id="calendar", mailbox=Mailbox(email_address=locator)
            ),
        )
        return account, folder

    def close(self) -> None:
        with self._lock:
            opened = list(self._accounts.values())
            self._accounts.clear()
        for account, _folder in opened:
            try:
                account.protocol.close()
            except Exception:
                log.debug("closing EWS sessions failed", exc_info=True)

    # --- sync --------------------------------------------------------------------------
    def sync(
        self,
        locator: str,
        state: str | None,
        known: Mapping[str, str],
        window: Window,
    ) -> ChangeSet:
        log.debug("EWS sync of %s", locator)
        try:
            return self._sync(locator, state, known, window)
        except SourceError:
            raise
        except Exception as exc:
            raise self._translate(exc) from None

    def _sync(
        self, locator: str, state: str | None, known: Mapping[str, str], window: Window
    ) -> ChangeSet:
        from exchangelib.errors import ErrorInvalidSyncStateData

        account, folder = self._calendar(locator)
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
        deletes = [href for href in known if href not in present]
        return ChangeSet(
            full=True, upserts=upserts, deletes=deletes, state=new_state, requests=counter[0]
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
                if type(item).__name__ not in _ITEM_ERRORS:
                    raise item
                raw = _problem_raw(
                    row,
                    f"Exchange could not return this entry ({type(item).__name__}); "
                    "open it in Outlook and save it again",
                )
            else:
                try:
                    raw = _to_raw(item)
                except Exception as exc:
                    log.debug("EWS item unreadable", exc_info=exc)
                    raw = _problem_raw(
                        row,
                        str(exc)
                        if isinstance(exc, _Unreadable)
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
                    account.fetch(ids=fresh, folder=folder, only_fields=_FIELDS),
                    strict=True,
                )
            if len(rows) < page:
                return
            last_start = max(_aware(r.start, _UTC) for r in rows)
            if last_start <= start:
                # A full page of entries all starting at (or before) the cursor: widen it.
                if page >= 1000:
                    raise SourceError(f"{self.name}: more than 1000 calendar entries at one moment")
                page = min(page * 2, 1000)
                continue
            start = last_start

    # --- errors --------------------------------------------------------------------------
    def _translate(self, exc: Exception) -> SourceError:
        # Library messages may quote the server's response (names, addresses): log them at
        # DEBUG only and build our own message from the error class.
        log.debug("EWS error from %s", self.name, exc_info=exc)
        from exchangelib import errors as e

        kind = type(exc).__name__
        if isinstance(exc, e.UnauthorizedError):
            return AuthError(f"{self.name}: Exchange rejected the service account's credentials")
        if isinstance(exc, e.ErrorImpersonateUserDenied | e.ErrorImpersonationDenied):
            return AuthError(
                f"{self.name}: the service account may not impersonate this mailbox "
                "(ApplicationImpersonation role or its management scope)"
            )
        if isinstance(exc, e.ErrorAccessDenied):
            return AuthError(
                f"{self.name}: access to this calendar was denied ({kind}); check the "
                f"{self.opts.access_type} permission"
            )
        if isinstance(exc, e.ErrorNonExistentMailbox | e.ErrorFolderNotFound):
            return SourceError(f"{self.name}: mailbox or calendar not found", permanent=True)
        if isinstance(exc, e.ErrorServerBusy):
            wait = exc.back_off if exc.back_off else 60.0
            return SourceError(f"{self.name}: Exchange is busy; retry later", retry_after=wait)
        if isinstance(exc, e.RateLimitError):
            return SourceError(f"{self.name}: Exchange is throttling us", retry_after=exc.wait)
        if isinstance(exc, e.ErrorTimeoutExpired):
            return SourceError(f"{self.name}: cannot reach Exchange (timeout or refused)")
        if isinstance(exc, e.CASError):
            return SourceError(
                f"{self.name}: the Exchange front end refused the request ({kind})", permanent=True
            )
        if isinstance(exc, e.RedirectError):
            return SourceError(
                f"{self.name}: Exchange redirected the request; check service_endpoint",
                permanent=True,
            )
        if isinstance(
            exc, e.MalformedResponseError | e.SOAPError | e.ErrorSchemaValidation
        ) or kind in ("ParseError", "XMLSyntaxError"):
            return SourceError(f"{self.name}: Exchange sent a malformed response ({kind})")
        if isinstance(exc, e.TransportError | e.ResponseMessageError | e.EWSError):
            return SourceError(f"{self.name}: Exchange request failed ({kind})")
        if isinstance(exc, OSError):
            return SourceError(f"{self.name}: cannot reach Exchange ({kind})")
        return SourceError(f"{self.name}: Exchange sent a response syncd cannot read ({kind})")


# --- mapping -----------------------------------------------------------------------------


def _zone(tz: Any) -> ZoneInfo:
    key = getattr(tz, "key", None)
    return ZoneInfo(key) if isinstance(key, str) and key else ZoneInfo("UTC")


def _plain_date(value: date) -> date:
    return date(value.year, value.month, value.day)


class _Unreadable(ValueError):
    """An item whose data cannot be mapped; the message names the field, never its value."""


def _to_raw(item: Any) -> RawItem:
    if item.start is None or (item.end is None and not item.is_all_day):
        raise _Unreadable("the entry's start or finish could not be read")
    tz = _zone(item._start_timezone)
    start: datetime | date
    end: datetime | date | None
    if item.is_all_day and not isinstance(item.start, datetime):
        start = _plain_date(item.start)
        # exchangelib hands back an inclusive last day; iCalendar-style ends are exclusive.
        end = _plain_date(item.end) + timedelta(days=1) if item.end is not None else None
    else:
        start = _aware(item.start, tz)
        end = _aware(item.end, _zone(item._end_timezone or item._start_timezone))
    recurrence_id = ""
    if item.type in ("Occurrence", "Exception") and item.original_start is not None:
        original = _aware(item.original_start, tz)
        recurrence_id = original.date().isoformat() if item.is_all_day else original.isoformat()
    occurrence = Occurrence(
        uid=item.uid or item.id,
        start=start,
        end=end,
        summary=item.subject or "",
        location=item.location or "",
        description=_body_text(item.body),
        categories=tuple(str(c) for c in item.categories or ()),
        cancelled=bool(item.is_cancelled),
        recurrence_id=recurrence_id,
        organizer=_organizer(item.organizer),
    )
    data = occurrence.to_json()
    href = item.id if not recurrence_id else f"{item.id}#{recurrence_id}"
    # An occurrence's ChangeKey is its series'; the digest keeps a changed expansion from
    # passing for unchanged.
    digest = hashlib.sha256(data.encode()).hexdigest()[:16]
    return RawItem(href=href, etag=f"{item.changekey}:{digest}", kind="occurrence", data=data)


def _problem_raw(row: Any, message: str) -> RawItem:
    """An entry Exchange listed but we could not read; its ItemId keeps it replaceable."""
    subject = row.subject if isinstance(row.subject, str) else ""
    data = problem_data(str(row.id), subject.strip(), message)
    digest = hashlib.sha256(data.encode()).hexdigest()[:16]
    return RawItem(
        href=str(row.id), etag=f"problem:{row.changekey}:{digest}", kind="problem", data=data
    )


def _organizer(mailbox: Any) -> str:
    address = getattr(mailbox, "email_address", None)
    # RoutingType EX carries an X.500 legacyExchangeDN, not an address: say nothing.
    if not isinstance(address, str) or "@" not in address:
        return ""
    return organizer_address(address)


def _body_text(body: Any) -> str:
    if not body:
        return ""
    from exchangelib import HTMLBody

    if isinstance(body, HTMLBody):
        return html_to_text(body)
    return str(body).replace("\r\n", "\n").strip()


def _aware(value: datetime, tz: ZoneInfo) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    plain = datetime(
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
        tzinfo=value.tzinfo,
        fold=value.fold,
    )
    return plain.astimezone(tz)


# --- HTML body -> text ---------------------------------------------------------------------

_BLOCK = {
    "p", "div", "br", "li", "tr", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
    "blockquote", "pre", "hr", "address", "section", "article", "header", "footer",
}  # fmt: skip
_HIDDEN = {"style", "script", "head", "title", "template"}


class _TextExtractor(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def _at_line_start(self) -> bool:
        return not self.parts or self.parts[-1].endswith("\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag == "br" or (tag in _BLOCK and not self._at_line_start()):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCK and tag != "br" and not self._at_line_start():
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        # Source line breaks inside HTML are layout, not content.
        text = re.sub(r"[ \t\r\n]+", " ", data)
        if text == " " and self._at_line_start():
            return
        self.parts.append(text)


def html_to_text(body: str) -> str:
    """An HTML body (as Outlook writes it) as plain text, one line per paragraph or <br>."""
    parser = _TextExtractor()
    parser.feed(body)
    parser.close()
    text = "".join(parser.parts).replace("\xa0", " ")
    out: list[str] = []
    for line in (raw.strip() for raw in text.split("\n")):
        if line or (out and out[-1]):
            out.append(line)  # at most one blank line in a row
    return "\n".join(out).strip()
