"""A local fake Exchange Web Services (EWS) server speaking the real SOAP wire protocol.

No Exchange can run here, so this serves what exchangelib (and any EWS client) sends and
parses, shaped after Microsoft's published schema (messages.xsd / types.xsd) and the
documented request/response examples:

* ``GetFolder`` for the distinguished ``root``/``msgfolderroot``/``calendar`` folders;
* ``FindItem`` with a ``CalendarView`` (recurring series expanded server-side, results in
  start order, ``MaxEntriesReturned`` honoured with ``IncludesLastItemInRange="false"``)
  or an ``IndexedPageItemView`` (masters, paged by ``Offset``);
* ``GetItem`` with ``AdditionalProperties``;
* ``SyncFolderItems`` with an opaque ``SyncState``, ``MaxChangesReturned`` paging and
  ``ErrorInvalidSyncStateData`` for expired states (as the documented error example);
* Basic authentication (401 otherwise), the ``ExchangeImpersonation`` header checked
  against the service account's ApplicationImpersonation scope
  (``ErrorImpersonateUserDenied`` fault), delegate access checked per calendar
  (``ErrorAccessDenied``);
* injected failures: ``ErrorServerBusy`` faults with ``BackOffMilliseconds``, malformed XML,
  an HTML error page, a SOAP body without the expected response.

Events are written from harness ``EventSpec`` objects (duck-typed: uid, summary, start, end,
location, description, categories, cancelled, rrule, exdates, overrides, tzid).
"""

from __future__ import annotations

import base64
import html
import http.server
import itertools
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from xml.sax.saxutils import escape, quoteattr
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from exchangelib.winzone import IANA_TO_MS_TIMEZONE_MAP, MS_TIMEZONE_TO_IANA_MAP

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
_NS = {"s": SOAP, "m": M, "t": T}

_MAX_OCCURRENCES = 5000


# --- the mailbox store -------------------------------------------------------------


@dataclass
class _Stored:
    item_id: str
    spec: Any
    version: int
    created_seq: int

    @property
    def changekey(self) -> str:
        return base64.b64encode(f"CQAAABYAAAA{self.version:08d}".encode()).decode()


@dataclass
class _Mailbox:
    smtp: str
    impersonation: bool = True
    delegate: bool = True
    items: dict[str, _Stored] = field(default_factory=dict)  # item id -> item
    by_uid: dict[str, str] = field(default_factory=dict)
    touched: dict[str, int] = field(default_factory=dict)  # item id -> last change seq
    tombstones: dict[str, int] = field(default_factory=dict)  # deleted id -> created seq


@dataclass(frozen=True)
class _Instance:
    """One CalendarView row: a single item, an occurrence or an exception of a series."""

    item_id: str
    changekey: str
    kind: str  # Single | Occurrence | Exception | RecurringMaster
    spec: Any
    start: datetime  # aware, UTC
    end: datetime
    original_start: datetime | None
    mailbox: str
    organizer: str


@dataclass
class _Failure:
    operation: str | None
    kind: str
    back_off_ms: int = 0


class FakeEws:
    """The fake server. ``start()`` it, point a client at :attr:`url`, ``stop()`` it."""

    def __init__(self, *, username: str = "svc-syncd", password: str = "s3cret") -> None:
        self.username = username
        self.password = password
        self.mailboxes: dict[str, _Mailbox] = {}
        self.calls: list[str] = []
        """Operation names in arrival order (GetFolder, FindItem, GetItem, SyncFolderItems)."""
        self.view_requests: list[tuple[str, str, int | None]] = []
        """(StartDate, EndDate, MaxEntriesReturned) of every CalendarView received."""
        self.impersonated: list[str] = []
        self._failures: list[_Failure] = []
        self.corrupted: set[str] = set()
        """ItemIds whose GetItem answers ErrorCorruptData (occurrences included)."""
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self._epoch = 0
        self._lock = threading.RLock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------
    def start(self) -> FakeEws:
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeEws:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/EWS/Exchange.asmx"

    # --- test side ------------------------------------------------------------------
    def add_mailbox(self, smtp: str, *, impersonation: bool = True, delegate: bool = True) -> str:
        with self._lock:
            self.mailboxes.setdefault(
                smtp.lower(), _Mailbox(smtp, impersonation=impersonation, delegate=delegate)
            )
        return smtp

    def put(self, smtp: str, spec: Any) -> str:
        """Create or replace the item with ``spec.uid``; returns its ItemId."""
        with self._lock:
            mb = self.mailboxes[smtp.lower()]
            seq = next(self._seq)
            item_id = mb.by_uid.get(spec.uid)
            if item_id is None:
                raw = f"AAMkAD{smtp.lower()}|{next(self._ids)}".encode()
                item_id = base64.b64encode(raw).decode()
                mb.by_uid[spec.uid] = item_id
                mb.items[item_id] = _Stored(item_id, spec, 1, seq)
            else:
                old = mb.items[item_id]
                mb.items[item_id] = _Stored(item_id, spec, old.version + 1, old.created_seq)
            mb.touched[item_id] = seq
            return item_id

    def delete(self, smtp: str, uid: str) -> None:
        with self._lock:
            mb = self.mailboxes[smtp.lower()]
            item_id = mb.by_uid.pop(uid, None)
            if item_id is None:
                return
            gone = mb.items.pop(item_id)
            mb.tombstones[item_id] = gone.created_seq
            mb.touched[item_id] = next(self._seq)

    def corrupt(self, smtp: str, uid: str, corrupted: bool = True) -> None:
        """The item (every occurrence of a series) becomes unreadable: GetItem answers its
        ItemId with ErrorCorruptData, as Exchange does for an item with damaged properties."""
        with self._lock:
            item_id = self.mailboxes[smtp.lower()].by_uid[uid]
            (self.corrupted.add if corrupted else self.corrupted.discard)(item_id)

    def expire_sync_states(self) -> None:
        """Every SyncState handed out so far becomes invalid (ErrorInvalidSyncStateData)."""
        with self._lock:
            self._epoch += 1

    def fail_next(
        self, kind: str, *, operation: str | None = None, back_off_ms: int = 0, times: int = 1
    ) -> None:
        """Answer the next matching request(s) with a failure instead.

        ``kind``: ``busy`` (ErrorServerBusy fault with BackOffMilliseconds), ``malformed``
        (cut-off XML), ``html`` (an IIS error page, HTTP 500), ``unexpected`` (a SOAP body
        without the expected response element), ``garbage-item`` (a response whose item
        has an unparseable Start).
        """
        with self._lock:
            self._failures.extend(_Failure(operation, kind, back_off_ms) for _ in range(times))

    # --- expansion ------------------------------------------------------------------
    def _instances(self, mb: _Mailbox, start: datetime, end: datetime) -> list[_Instance]:
        rows: list[_Instance] = []
        for stored in mb.items.values():
            rows.extend(_expand(mb.smtp, stored, start, end))
        rows.sort(key=lambda r: (r.start, r.end, r.item_id))
        return rows

    def _find_instance(self, item_id: str) -> tuple[_Mailbox, _Stored, _Instance] | None:
        master_id, original = _split_occurrence_id(item_id)
        for mb in self.mailboxes.values():
            stored = mb.items.get(master_id)
            if stored is None:
                continue
            if original is None:
                return mb, stored, _master_instance(mb.smtp, stored)
            window_start = original - timedelta(days=1)
            for inst in _expand(mb.smtp, stored, window_start, original + timedelta(days=400)):
                if inst.original_start == original:
                    return mb, stored, inst
            return None
        return None


# --- recurrence expansion ------------------------------------------------------------


def _zone(tzid: str) -> ZoneInfo:
    return ZoneInfo(MS_TIMEZONE_TO_IANA_MAP.get(tzid, tzid))


def _ms_zone(tzid: str) -> str:
    if tzid in MS_TIMEZONE_TO_IANA_MAP:
        return tzid
    return IANA_TO_MS_TIMEZONE_MAP.get(tzid, ("UTC",))[0]


def _aware(value: datetime | date, tz: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    return datetime.combine(value, time(0), tzinfo=tz)


def _span(spec: Any) -> tuple[datetime, datetime]:
    tz = _zone(spec.tzid)
    start = _aware(spec.start, tz)
    if spec.end is not None:
        end = _aware(spec.end, tz)
    elif isinstance(spec.start, datetime):
        end = start
    else:
        end = start + timedelta(days=1)
    return start, end


def _occurrence_id(master_id: str, original: datetime) -> str:
    raw = f"{master_id}#{original.astimezone(UTC):%Y%m%dT%H%M%SZ}".encode()
    return "AQMkAD" + base64.b64encode(raw).decode()


def _split_occurrence_id(item_id: str) -> tuple[str, datetime | None]:
    if not item_id.startswith("AQMkAD"):
        return item_id, None
    try:
        raw = base64.b64decode(item_id[6:]).decode()
        master_id, _, stamp = raw.partition("#")
        return master_id, datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except (ValueError, UnicodeDecodeError):
        return item_id, None


def _master_instance(smtp: str, stored: _Stored) -> _Instance:
    start, end = _span(stored.spec)
    kind = "RecurringMaster" if stored.spec.rrule else "Single"
    return _Instance(
        stored.item_id,
        stored.changekey,
        kind,
        stored.spec,
        start,
        end,
        None,
        smtp.lower(),
        _organizer(smtp, stored),
    )


def _organizer(smtp: str, stored: _Stored) -> str:
    # Exchange keeps one organizer per series (an exception cannot change it); an entry the
    # owner booked has the owner as organizer.
    return getattr(stored.spec, "organizer", "") or smtp.lower()


def _expand(smtp: str, stored: _Stored, start: datetime, end: datetime) -> Iterator[_Instance]:
    spec = stored.spec
    first_start, first_end = _span(spec)
    duration = first_end - first_start
    if not spec.rrule:
        if (first_end > start and first_start < end) or first_start == first_end == start:
            yield _master_instance(smtp, stored)
        return
    tz = _zone(spec.tzid)
    rule = rrulestr(spec.rrule, dtstart=first_start.astimezone(tz).replace(tzinfo=None))
    removed = {_aware(d, tz).astimezone(UTC) for d in spec.exdates}
    overrides = {_aware(k, tz).astimezone(UTC): v for k, v in spec.overrides.items()}
    lo = (start - duration - timedelta(days=1)).astimezone(tz).replace(tzinfo=None)
    hi = (end + timedelta(days=1)).astimezone(tz).replace(tzinfo=None)
    # Naive wall-clock expansion, then localised: a 09:00 series stays at 09:00 across DST.
    for n, local in enumerate(rule.between(lo, hi, inc=True)):
        if n >= _MAX_OCCURRENCES:
            break
        original = local.replace(tzinfo=tz).astimezone(UTC)
        if original in removed:
            continue
        override = overrides.get(original)
        if override is not None:
            o_start, o_end = _span(override)
            kind, occ_spec = "Exception", override
        else:
            o_start, o_end = original, original + duration
            kind, occ_spec = "Occurrence", spec
        if o_end > start and o_start < end:
            yield _Instance(
                _occurrence_id(stored.item_id, original),
                stored.changekey,
                kind,
                occ_spec,
                o_start,
                o_end,
                original,
                smtp.lower(),
                _organizer(smtp, stored),
            )


# --- XML rendering -------------------------------------------------------------------


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _html_body(text: str) -> str:
    # What Outlook stores: an HTML document with a style block and one <p> per line.
    paras = "".join(f"<p>{html.escape(line) or '&nbsp;'}</p>\r\n" for line in text.split("\n"))
    return (
        '<html>\r\n<head>\r\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
        '\r\n<style type="text/css" style="display:none;"><!-- P {margin-top:0;margin-bottom:0;} '
        '--></style>\r\n</head>\r\n<body dir="ltr">\r\n<div id="divtagdefaultwrapper">\r\n'
        f"{paras}</div>\r\n</body>\r\n</html>\r\n"
    )


# types.xsd order: ItemType elements first, then CalendarItemType's own.
_FIELD_ORDER = [
    "item:ParentFolderId",
    "item:ItemClass",
    "item:Subject",
    "item:Body",
    "item:Categories",
    "calendar:UID",
    "calendar:Start",
    "calendar:End",
    "calendar:OriginalStart",
    "calendar:IsAllDayEvent",
    "calendar:LegacyFreeBusyStatus",
    "calendar:Location",
    "calendar:IsCancelled",
    "calendar:IsRecurring",
    "calendar:CalendarItemType",
    "calendar:Organizer",
    "calendar:StartTimeZone",
    "calendar:EndTimeZone",
]


def _render_field(uri: str, inst: _Instance, garbage: bool) -> str:
    spec = inst.spec
    all_day = not isinstance(spec.start, datetime)
    tzid = _ms_zone(spec.tzid)
    if uri == "item:ParentFolderId":
        return '<t:ParentFolderId Id="AQMkADcalendar" ChangeKey="AgAAAA=="/>'
    if uri == "item:ItemClass":
        return "<t:ItemClass>IPM.Appointment</t:ItemClass>"
    if uri == "item:Subject":
        return f"<t:Subject>{escape(spec.summary)}</t:Subject>"
    if uri == "item:Body":
        body = escape(_html_body(spec.description)) if spec.description else ""
        return f'<t:Body BodyType="HTML" IsTruncated="false">{body}</t:Body>'
    if uri == "item:Categories":
        if not spec.categories:
            return ""
        inner = "".join(f"<t:String>{escape(c)}</t:String>" for c in spec.categories)
        return f"<t:Categories>{inner}</t:Categories>"
    if uri == "calendar:UID":
        return f"<t:UID>{escape(spec.uid)}</t:UID>"
    if uri == "calendar:Start":
        return f"<t:Start>{'not-a-date' if garbage else _utc(inst.start)}</t:Start>"
    if uri == "calendar:End":
        return f"<t:End>{_utc(inst.end)}</t:End>"
    if uri == "calendar:OriginalStart":
        if inst.original_start is None:
            return ""
        return f"<t:OriginalStart>{_utc(inst.original_start)}</t:OriginalStart>"
    if uri == "calendar:IsAllDayEvent":
        return f"<t:IsAllDayEvent>{str(all_day).lower()}</t:IsAllDayEvent>"
    if uri == "calendar:LegacyFreeBusyStatus":
        return "<t:LegacyFreeBusyStatus>Busy</t:LegacyFreeBusyStatus>"
    if uri == "calendar:Location":
        return f"<t:Location>{escape(spec.location)}</t:Location>" if spec.location else ""
    if uri == "calendar:IsCancelled":
        return f"<t:IsCancelled>{str(bool(spec.cancelled)).lower()}</t:IsCancelled>"
    if uri == "calendar:IsRecurring":
        recurring = inst.kind in ("Occurrence", "Exception")
        return f"<t:IsRecurring>{str(recurring).lower()}</t:IsRecurring>"
    if uri == "calendar:CalendarItemType":
        return f"<t:CalendarItemType>{inst.kind}</t:CalendarItemType>"
    if uri == "calendar:Organizer":
        # types.xsd SingleRecipientType > EmailAddressType: Name, EmailAddress, RoutingType,
        # MailboxType, in that order.
        name = "Mailbox Owner" if inst.organizer == inst.mailbox else inst.organizer.split("@")[0]
        return (
            f"<t:Organizer><t:Mailbox><t:Name>{escape(name)}</t:Name>"
            f"<t:EmailAddress>{escape(inst.organizer)}</t:EmailAddress>"
            "<t:RoutingType>SMTP</t:RoutingType><t:MailboxType>Mailbox</t:MailboxType>"
            "</t:Mailbox></t:Organizer>"
        )
    if uri in ("calendar:StartTimeZone", "calendar:EndTimeZone"):
        tag = uri.split(":")[1]
        return f"<t:{tag} Id={quoteattr(tzid)} Name={quoteattr(tzid)}/>"
    return ""


def _render_item(inst: _Instance, fields: list[str], garbage: bool = False) -> str:
    wanted = set(fields)
    parts = [f'<t:ItemId Id="{inst.item_id}" ChangeKey="{inst.changekey}"/>']
    parts += [_render_field(uri, inst, garbage) for uri in _FIELD_ORDER if uri in wanted]
    return f"<t:CalendarItem>{''.join(parts)}</t:CalendarItem>"


def _envelope(body: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<s:Envelope xmlns:s="{SOAP}"><s:Header>'
        '<h:ServerVersionInfo MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" '
        f'MinorBuildNumber="6" Version="V2017_07_11" xmlns:h="{T}" xmlns="{T}" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/>'
        f'</s:Header><s:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xmlns:xsd="http://www.w3.org/2001/XMLSchema">{body}</s:Body></s:Envelope>'
    ).encode()


def _response(op: str, messages: list[str]) -> bytes:
    return _envelope(
        f'<m:{op}Response xmlns:m="{M}" xmlns:t="{T}"><m:ResponseMessages>'
        + "".join(messages)
        + f"</m:ResponseMessages></m:{op}Response>"
    )


def _error_message(op: str, code: str, text: str, extra: str = "") -> str:
    return (
        f'<m:{op}ResponseMessage ResponseClass="Error"><m:MessageText>{escape(text)}'
        f"</m:MessageText><m:ResponseCode>{code}</m:ResponseCode>"
        f"<m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>{extra}</m:{op}ResponseMessage>"
    )


def _fault(code: str, text: str, message_xml: str = "") -> bytes:
    return _envelope(
        f'<s:Fault><faultcode xmlns:a="{T}">a:{code}</faultcode>'
        f'<faultstring xml:lang="en-US">{escape(text)}</faultstring><detail>'
        f'<e:ResponseCode xmlns:e="{E}">{code}</e:ResponseCode>'
        f'<e:Message xmlns:e="{E}">{escape(text)}</e:Message>'
        + (f'<t:MessageXml xmlns:t="{T}">{message_xml}</t:MessageXml>' if message_xml else "")
        + "</detail></s:Fault>"
    )


# --- request handling ------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    fake: FakeEws
    protocol_version = "HTTP/1.1"
    # Without this every response waits on Nagle + delayed ACK: ~13x slower.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "text/xml; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="127.0.0.1"')
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        expected = (
            "Basic "
            + base64.b64encode(f"{self.fake.username}:{self.fake.password}".encode()).decode()
        )
        if self.headers.get("Authorization") != expected:
            self._send(401, b"", "text/html")
            return
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            self._send(
                500, _fault("ErrorSchemaValidation", "The request failed schema validation.")
            )
            return
        op_elem = root.find("s:Body/*", _NS)
        if op_elem is None:
            self._send(500, _fault("ErrorInvalidRequest", "The request is invalid."))
            return
        op = op_elem.tag.rsplit("}", 1)[-1]
        with self.fake._lock:
            self.fake.calls.append(op)
            failure = self._take_failure(op)
            if failure is not None:
                self._fail(failure, op)
                return
            status, payload = self._dispatch(root, op, op_elem)
        self._send(status, payload)

    def _take_failure(self, op: str) -> _Failure | None:
        for i, f in enumerate(self.fake._failures):
            if f.operation in (None, op) and f.kind != "garbage-item":
                return self.fake._failures.pop(i)
        return None

    def _fail(self, failure: _Failure, op: str) -> None:
        if failure.kind == "busy":
            value = f'<t:Value Name="BackOffMilliseconds">{failure.back_off_ms}</t:Value>'
            msg = "The server cannot service this request right now. Try again later."
            self._send(500, _fault("ErrorServerBusy", msg, value))
        elif failure.kind == "malformed":
            self._send(200, _response(op, [])[:180])
        elif failure.kind == "html":
            page = b"<html><body><h1>Server Error in '/EWS' Application.</h1></body></html>"
            self._send(500, page, "text/html")
        elif failure.kind == "unexpected":
            self._send(200, _envelope(f'<m:SomethingElse xmlns:m="{M}"/>'))
        else:  # pragma: no cover - test typo
            raise AssertionError(failure.kind)

    # --- routing ---------------------------------------------------------------------
    def _dispatch(self, root: ET.Element, op: str, req: ET.Element) -> tuple[int, bytes]:
        impersonated = root.findtext(
            "s:Header/t:ExchangeImpersonation/t:ConnectingSID/t:PrimarySmtpAddress", None, _NS
        )
        if impersonated is not None:
            self.fake.impersonated.append(impersonated)
            mb = self.fake.mailboxes.get(impersonated.strip().lower())
            if mb is None:
                return 500, _fault(
                    "ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it."
                )
            if not mb.impersonation:
                return 500, _fault(
                    "ErrorImpersonateUserDenied",
                    "The account does not have permission to impersonate the requested user.",
                )
        handler = {
            "GetFolder": self._get_folder,
            "FindItem": self._find_item,
            "GetItem": self._get_item,
            "SyncFolderItems": self._sync_folder_items,
        }.get(op)
        if handler is None:
            return 500, _fault("ErrorInvalidRequest", f"{op} is not supported by this fake.")
        return 200, handler(req, impersonated)

    def _target(self, folder: ET.Element | None, impersonated: str | None) -> _Mailbox | str:
        """The mailbox a folder id points at, or an error code."""
        smtp = impersonated
        if folder is not None:
            smtp = folder.findtext("t:Mailbox/t:EmailAddress", None, _NS) or smtp
        if smtp is None:
            return "ErrorMissingEmailAddress"
        mb = self.fake.mailboxes.get(smtp.strip().lower())
        if mb is None:
            return "ErrorNonExistentMailbox"
        if impersonated is None and not mb.delegate:
            return "ErrorAccessDenied"
        return mb

    @staticmethod
    def _fields(req: ET.Element) -> list[str]:
        shape = req.find("m:ItemShape", _NS)
        if shape is None:
            return []
        uris = [e.get("FieldURI", "") for e in shape.iter(f"{{{T}}}FieldURI")]
        if shape.findtext("t:BaseShape", "", _NS) in ("Default", "AllProperties"):
            uris += _FIELD_ORDER
        return uris

    def _get_folder(self, req: ET.Element, impersonated: str | None) -> bytes:
        msgs = []
        for fid in req.findall("m:FolderIds/t:DistinguishedFolderId", _NS):
            target = self._target(fid, impersonated)
            if isinstance(target, str):
                msgs.append(_error_message("GetFolder", target, "Access is denied."))
                continue
            name = fid.get("Id", "")
            tag = "CalendarFolder" if name == "calendar" else "Folder"
            folder_id = base64.b64encode(f"{target.smtp}/{name}".encode()).decode()
            msgs.append(
                '<m:GetFolderResponseMessage ResponseClass="Success">'
                "<m:ResponseCode>NoError</m:ResponseCode><m:Folders>"
                f'<t:{tag}><t:FolderId Id="{folder_id}" ChangeKey="AQAAAA=="/>'
                f"<t:DisplayName>{escape(name.capitalize())}</t:DisplayName>"
                f"<t:TotalCount>{len(target.items)}</t:TotalCount><t:ChildFolderCount>0"
                f"</t:ChildFolderCount></t:{tag}></m:Folders></m:GetFolderResponseMessage>"
            )
        return _response("GetFolder", msgs)

    def _find_item(self, req: ET.Element, impersonated: str | None) -> bytes:
        target = self._target(
            req.find("m:ParentFolderIds/t:DistinguishedFolderId", _NS), impersonated
        )
        if isinstance(target, str):
            return _response("FindItem", [_error_message("FindItem", target, "Access is denied.")])
        fields = self._fields(req)
        view = req.find("m:CalendarView", _NS)
        if view is not None:
            start = _parse_dt(view.get("StartDate", ""))
            end = _parse_dt(view.get("EndDate", ""))
            limit_attr = view.get("MaxEntriesReturned")
            limit = int(limit_attr) if limit_attr else None
            self.fake.view_requests.append(
                (view.get("StartDate", ""), view.get("EndDate", ""), limit)
            )
            rows = self.fake._instances(target, start, end)
            total = len(rows)
            page = rows if limit is None else rows[:limit]
            last = len(page) == total
            paging = f'TotalItemsInView="{total}" IncludesLastItemInRange="{str(last).lower()}"'
        else:
            indexed = req.find("m:IndexedPageItemView", _NS)
            offset = int(indexed.get("Offset", "0")) if indexed is not None else 0
            limit = int(indexed.get("MaxEntriesReturned", "1000")) if indexed is not None else 1000
            rows = sorted(
                (_master_instance(target.smtp, s) for s in target.items.values()),
                key=lambda r: r.item_id,
            )
            total = len(rows)
            page = rows[offset : offset + limit]
            nxt = offset + len(page)
            last = nxt >= total
            paging = (
                f'IndexedPagingOffset="{nxt}" TotalItemsInView="{total}" '
                f'IncludesLastItemInRange="{str(last).lower()}"'
            )
        garbage = self._take_garbage("FindItem")
        items = "".join(_render_item(r, fields, garbage) for r in page)
        return _response(
            "FindItem",
            [
                '<m:FindItemResponseMessage ResponseClass="Success">'
                f"<m:ResponseCode>NoError</m:ResponseCode><m:RootFolder {paging}>"
                f"<t:Items>{items}</t:Items></m:RootFolder></m:FindItemResponseMessage>"
            ],
        )

    def _take_garbage(self, op: str) -> bool:
        for i, f in enumerate(self.fake._failures):
            if f.kind == "garbage-item" and f.operation in (None, op):
                del self.fake._failures[i]
                return True
        return False

    def _get_item(self, req: ET.Element, impersonated: str | None) -> bytes:
        fields = self._fields(req)
        garbage = self._take_garbage("GetItem")
        msgs = []
        for ref in req.findall("m:ItemIds/t:ItemId", _NS):
            found = self.fake._find_instance(ref.get("Id", ""))
            if found is None:
                msgs.append(
                    _error_message(
                        "GetItem", "ErrorItemNotFound", "The specified object was not found."
                    )
                )
                continue
            mb, stored, inst = found
            if stored.item_id in self.fake.corrupted:
                msgs.append(
                    _error_message("GetItem", "ErrorCorruptData", "The item data is corrupt.")
                )
                continue
            denied = impersonated is not None and mb.smtp.lower() != impersonated.strip().lower()
            if denied or (impersonated is None and not mb.delegate):
                msgs.append(_error_message("GetItem", "ErrorAccessDenied", "Access is denied."))
                continue
            msgs.append(
                '<m:GetItemResponseMessage ResponseClass="Success">'
                "<m:ResponseCode>NoError</m:ResponseCode>"
                f"<m:Items>{_render_item(inst, fields, garbage)}</m:Items>"
                "</m:GetItemResponseMessage>"
            )
        return _response("GetItem", msgs)

    def _sync_folder_items(self, req: ET.Element, impersonated: str | None) -> bytes:
        op = "SyncFolderItems"
        target = self._target(req.find("m:SyncFolderId/t:DistinguishedFolderId", _NS), impersonated)
        # Error replies carry an empty SyncState, as Microsoft's documented error example.
        empty_state = "<m:SyncState/><m:IncludesLastItemInRange>true</m:IncludesLastItemInRange>"
        if isinstance(target, str):
            return _response(op, [_error_message(op, target, "Access is denied.", empty_state)])
        state_text = req.findtext("m:SyncState", "", _NS).strip()
        since = _parse_state(state_text, self.fake._epoch, target.smtp)
        if since is None:
            return _response(
                op,
                [
                    _error_message(
                        op,
                        "ErrorInvalidSyncStateData",
                        "Synchronization state data is corrupt or otherwise invalid.",
                        empty_state,
                    )
                ],
            )
        limit = int(req.findtext("m:MaxChangesReturned", "512", _NS))
        pending = sorted(
            ((seq, item_id) for item_id, seq in target.touched.items() if seq > since),
        )
        changes: list[str] = []
        head = since
        for seq, item_id in pending:
            stored = target.items.get(item_id)
            if stored is not None:
                kind = "Create" if stored.created_seq > since else "Update"
                changes.append(
                    f'<t:{kind}><t:CalendarItem><t:ItemId Id="{item_id}" '
                    f'ChangeKey="{stored.changekey}"/></t:CalendarItem></t:{kind}>'
                )
            elif target.tombstones.get(item_id, since + 1) <= since:
                changes.append(f'<t:Delete><t:ItemId Id="{item_id}"/></t:Delete>')
            else:
                head = seq  # created and deleted since the client's state: nothing to say
                continue
            head = seq
            if len(changes) >= limit:
                break
        last = all(seq <= head for seq, _ in pending)
        new_state = _make_state(self.fake._epoch, target.smtp, head)
        return _response(
            op,
            [
                f'<m:{op}ResponseMessage ResponseClass="Success">'
                f"<m:ResponseCode>NoError</m:ResponseCode><m:SyncState>{new_state}</m:SyncState>"
                f"<m:IncludesLastItemInRange>{str(last).lower()}</m:IncludesLastItemInRange>"
                f"<m:Changes>{''.join(changes)}</m:Changes></m:{op}ResponseMessage>"
            ],
        )


def _parse_dt(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _make_state(epoch: int, smtp: str, seq: int) -> str:
    # Real SyncStates are opaque base64 blobs (H4sIAAAA... gzip); so is this one.
    return base64.b64encode(f"H4sI|{epoch}|{smtp.lower()}|{seq}".encode()).decode()


def _parse_state(text: str, epoch: int, smtp: str) -> int | None:
    if not text:
        return 0
    try:
        magic, e, who, seq = base64.b64decode(text, validate=True).decode().split("|")
    except (ValueError, UnicodeDecodeError):
        return None
    if magic != "H4sI" or e != str(epoch) or who != smtp.lower() or not seq.isdigit():
        return None
    return int(seq)
