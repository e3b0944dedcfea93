"""A local fake of Microsoft Entra ID (token endpoint) and Microsoft Graph calendars.

It speaks the documented wire protocol over real HTTPS (a throwaway ``trustme`` CA, since
msal refuses a non-https authority):

* ``GET /{tenant}/v2.0/.well-known/openid-configuration`` and
  ``POST /{tenant}/oauth2/v2.0/token`` (client_credentials with a client secret or a
  certificate-signed client assertion), with Entra's ``AADSTS`` error bodies.
* ``GET /v1.0/users/{id|upn}/calendarView/delta`` with ``startDateTime``/``endDateTime``,
  ``@odata.nextLink`` ($skiptoken) pages, ``@odata.deltaLink`` ($deltatoken), ``@removed``
  rows (reason ``deleted`` / ``changed``), ``Prefer: odata.maxpagesize``,
  ``outlook.timezone``, ``outlook.body-content-type`` and ``Preference-Applied``;
  410 ``syncStateNotFound`` for a forgotten token.
* ``POST /v1.0/$batch`` (at most 20 requests, answered in a different order);
  ``POST/PATCH/DELETE /v1.0/subscriptions`` with the validationToken handshake, and change
  notifications POSTed to the subscriber when an event changes.
* 429 with ``Retry-After`` on demand, and for a 5th concurrent request to one mailbox.

Like Exchange, a delta token is a server-side snapshot of the view it was issued for; the
same token can be replayed until :meth:`FakeGraph.expire_delta_tokens` forgets them all.
Calendar contents are put in through Python methods (``put_event`` ...), as a user typing
in Outlook would; recurring series are expanded by the server (daily, weekly, monthly).
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
import json
import re
import secrets
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit
from zoneinfo import ZoneInfo

import httpx
import jwt
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

MAX_PER_MAILBOX = 4
MAX_SUBSCRIPTION = timedelta(minutes=10080)
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_SERVER_FIELDS = ("@odata.context", "@odata.etag", "changeKey", "createdDateTime")


def zone(name: str) -> tzinfo:
    if name.upper() in ("UTC", "ETC/UTC", "Z"):
        return UTC
    return ZoneInfo(WINDOWS_TO_OLSON.get(name, name))


def _graph_dt(value: datetime) -> str:
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "0"


def _zulu(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_dtz(value: dict[str, Any]) -> datetime:
    text = re.sub(r"(\.\d{6})\d+", r"\1", str(value["dateTime"]))
    return datetime.fromisoformat(text).replace(tzinfo=zone(str(value.get("timeZone") or "UTC")))


def _html_to_text(content: str) -> str:
    content = re.sub(r"(?is)<(head|style|script)\b.*?</\1>", "", content)
    content = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", content)
    content = html.unescape(re.sub(r"<[^>]+>", "", content)).replace("\xa0", " ")
    return "\n".join(line.strip() for line in content.splitlines() if line.strip())


def _error(code: str, message: str) -> dict[str, Any]:
    return {
        "error": {"code": code, "message": message, "innerError": {"date": "2026-01-01T00:00:00"}}
    }


def _preferences(values: list[str]) -> dict[str, str]:
    """Prefer headers (repeated or comma-separated) -> {name: value}."""
    out: dict[str, str] = {}
    for header in values:
        for part in re.findall(r'(?:[^,"]|"[^"]*")+', header):
            name, _, value = part.strip().partition("=")
            if name:
                out[name.strip().lower()] = value.strip().strip('"')
    return out


@dataclass
class Mailbox:
    address: str
    user_id: str
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Single events and series masters as the user wrote them (Graph JSON)."""
    exceptions: dict[str, dict[datetime, dict[str, Any]]] = field(default_factory=dict)
    cancelled: dict[str, set[datetime]] = field(default_factory=dict)
    denied: bool = False


@dataclass
class _Pages:
    mailbox: str
    rows: list[dict[str, Any]]
    delta_token: str


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = "application/json"


@dataclass
class Seen:
    """One request as the fake received it (tests assert on these)."""

    method: str
    path: str
    query: dict[str, str]
    prefer: dict[str, str]
    mailbox: str | None
    batched: bool = False


class FakeGraph:
    def __init__(
        self,
        *,
        tenant_id: str = "11111111-2222-3333-4444-555555555555",
        client_id: str = "syncd-test-app",
        client_secret: str = "correct-horse-battery-staple",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.tenant_id, self.client_id, self.client_secret = tenant_id, client_id, client_secret
        self.clock = clock
        self.ca = trustme.CA()
        self._cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.mailboxes: dict[str, Mailbox] = {}
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.certificate: x509.Certificate | None = None
        self._delta: dict[str, tuple[str, datetime, datetime, dict[str, str]]] = {}
        self._pages: dict[str, _Pages] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.deliveries: list[tuple[str, int]] = []
        """(notificationUrl, HTTP status) of every notification POST the fake made."""
        self.seen: list[Seen] = []
        self.served: list[dict[str, Any]] = []
        """Every delta row sent, as sent."""
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        self.gate: threading.Event | None = None
        # --- knobs ---
        self.honour_timezone_preference = True
        self.replay_rows = False
        self.default_page_size = 10
        self._throttle: list[tuple[int, str | None]] = []
        self._raw: list[Reply] = []
        self._seq = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._tmp: Path | None = None

    # --- lifecycle ---------------------------------------------------------------------
    def start(self, tmp_dir: Path) -> FakeGraph:
        self._tmp = tmp_dir
        self.ca_file = tmp_dir / "graph-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(ctx)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.gate is not None:
            self.gate.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGraph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def graph_url(self) -> str:
        return f"{self.base_url}/v1.0"

    public_graph_url: str | None = None
    """Where clients reach Graph when a proxy stands in front (links are built on it), as
    graph.microsoft.com's links name the host the client called."""

    # --- the directory and the calendars (what users and admins do) ---------------------
    def add_mailbox(self, address: str) -> str:
        with self.lock:
            box = Mailbox(address=address, user_id=str(uuid.uuid4()))
            self.mailboxes[address.lower()] = box
            return box.user_id

    def deny(self, address: str, denied: bool = True) -> None:
        """Leave the mailbox out of the application access policy."""
        self._box(address).denied = denied

    def put_event(self, address: str, event: dict[str, Any], event_id: str | None = None) -> str:
        """Create or replace a single event or series master (with none of its old
        exceptions); returns its id."""
        with self.lock:
            box = self._box(address)
            eid = (
                event_id or event.get("id") or base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()
            )
            stored = {k: v for k, v in event.items() if k not in _SERVER_FIELDS}
            stored["id"] = eid
            # Graph always names an organizer: the mailbox owner unless someone else booked it.
            stored.setdefault(
                "organizer",
                {"emailAddress": {"name": box.address.split("@")[0], "address": box.address}},
            )
            stored.setdefault(
                "iCalUId",
                "040000008200E00074C5B7101A82E008" + hashlib.md5(eid.encode()).hexdigest(),
            )
            created = eid not in box.events
            box.events[eid] = stored
            # Replacing an event replaces the whole series: exceptions are added afterwards.
            box.exceptions.pop(eid, None)
            box.cancelled.pop(eid, None)
        self._notify(box, "created" if created else "updated", eid)
        return str(eid)

    def delete_event(self, address: str, event_id: str) -> None:
        with self.lock:
            box = self._box(address)
            box.events.pop(event_id, None)
            box.exceptions.pop(event_id, None)
            box.cancelled.pop(event_id, None)
        self._notify(box, "deleted", event_id)

    def put_exception(
        self, address: str, master_id: str, original_start: datetime, changes: dict[str, Any]
    ) -> str:
        """Modify one occurrence of a series (it becomes an ``exception``)."""
        key = original_start.astimezone(UTC)
        with self.lock:
            box = self._box(address)
            box.exceptions.setdefault(master_id, {})[key] = dict(changes)
        iid = _instance_id(master_id, key)
        self._notify(box, "updated", iid)
        return iid

    def cancel_occurrence(self, address: str, master_id: str, original_start: datetime) -> None:
        """Delete one occurrence, as the organizer's Outlook does."""
        key = original_start.astimezone(UTC)
        with self.lock:
            box = self._box(address)
            box.cancelled.setdefault(master_id, set()).add(key)
            box.exceptions.get(master_id, {}).pop(key, None)
        self._notify(box, "deleted", _instance_id(master_id, key))

    # --- knobs -------------------------------------------------------------------------
    def expire_delta_tokens(self) -> None:
        with self.lock:
            self._delta.clear()
            self._pages.clear()

    def throttle(self, count: int, retry_after: str | None = "3", status: int = 429) -> None:
        """The next ``count`` Graph operations (batched ones included) are refused."""
        with self.lock:
            self._throttle.extend([(status, retry_after)] * count)

    def inject(self, reply: Reply, count: int = 1) -> None:
        """The next ``count`` HTTP requests to /v1.0 get ``reply`` verbatim."""
        with self.lock:
            self._raw.extend([reply] * count)

    def rotate_secret(self, new_secret: str) -> None:
        """A new client secret, with every token issued so far revoked."""
        with self.lock:
            self.client_secret = new_secret
            self.tokens.clear()

    def register_certificate(self, pem: bytes) -> None:
        self.certificate = x509.load_pem_x509_certificate(pem)

    def wait_in_flight(self, address: str, count: int, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(
                lambda: self.in_flight.get(address.lower(), 0) >= count, timeout=timeout
            )

    # --- Entra ID ----------------------------------------------------------------------
    def _discovery(self, tenant: str) -> Reply:
        if tenant != self.tenant_id:
            return Reply(400, _aad("invalid_tenant", 90002, f"Tenant '{tenant}' not found."))
        base = f"{self.base_url}/{tenant}"
        return Reply(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "issuer": f"{self.base_url}/{tenant}/v2.0",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "token"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            },
        )

    def _token(self, tenant: str, form: dict[str, str]) -> Reply:
        with self.lock:
            self.token_requests += 1
        if tenant != self.tenant_id:
            return Reply(400, _aad("invalid_request", 90002, f"Tenant '{tenant}' not found."))
        if form.get("grant_type") != "client_credentials":
            return Reply(400, _aad("unsupported_grant_type", 70003, "Unsupported grant type."))
        if form.get("client_id") != self.client_id:
            return Reply(
                400,
                _aad("unauthorized_client", 700016, "Application was not found in the directory."),
            )
        if not str(form.get("scope", "")).endswith("/.default"):
            return Reply(
                400, _aad("invalid_scope", 1002012, "The provided value for scope is not valid.")
            )
        if "client_assertion" in form:
            if not self._assertion_ok(tenant, form["client_assertion"]):
                return Reply(
                    401,
                    _aad("invalid_client", 700027, "Client assertion failed signature validation."),
                )
        elif form.get("client_secret") != self.client_secret:
            return Reply(
                401,
                _aad(
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request "
                    "is the client secret value, not the client secret ID.",
                ),
            )
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens.add(token)
        return Reply(
            200,
            {
                "token_type": "Bearer",
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": token,
            },
        )

    def _assertion_ok(self, tenant: str, assertion: str) -> bool:
        if self.certificate is None:
            return False
        try:
            header = jwt.get_unverified_header(assertion)
            want = base64.urlsafe_b64encode(self.certificate.fingerprint(hashes.SHA256())).rstrip(
                b"="
            )
            # msal pads the base64url thumbprint; Entra accepts it either way.
            if str(header.get("x5t#S256", "")).rstrip("=").encode() != want:
                return False
            claims = jwt.decode(
                assertion,
                self.certificate.public_key(),  # type: ignore[arg-type]
                algorithms=["PS256", "RS256"],
                audience=f"{self.base_url}/{tenant}/oauth2/v2.0/token",
            )
        except jwt.PyJWTError:
            return False
        return bool(claims.get("iss") == claims.get("sub") == self.client_id)

    # --- Graph -------------------------------------------------------------------------
    def graph(
        self,
        method: str,
        target: str,
        headers: dict[str, list[str]],
        body: Any,
        *,
        batched: bool = False,
    ) -> Reply:
        """One Graph operation; ``target`` is the path after /v1.0 plus the query."""
        parts = urlsplit(target)
        path = unquote(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        prefer = _preferences(headers.get("prefer", []))
        auth = (headers.get("authorization") or [""])[0]
        m = re.match(r"^/users/([^/]+)/", path, re.I)
        mailbox = m.group(1).lower() if m else None
        with self.lock:
            self.seen.append(Seen(method, path, query, prefer, mailbox, batched))
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return Reply(
                401, _error("InvalidAuthenticationToken", "Access token validation failure.")
            )
        with self.lock:
            if self._throttle:
                status, retry_after = self._throttle.pop(0)
                hdrs = {"Retry-After": retry_after} if retry_after is not None else {}
                return Reply(status, _error("TooManyRequests", "Too many requests."), hdrs)
        if path == "/$batch" and method == "POST" and not batched:
            return self._batch(body, auth)
        if path == "/subscriptions" and method == "POST":
            return self._subscribe(body)
        sm = re.match(r"^/subscriptions/([^/]+)$", path)
        if sm and method in ("PATCH", "DELETE"):
            return self._subscription_change(method, sm.group(1), body)
        dm = re.match(r"^/users/([^/]+)/calendarView/delta$", path, re.I)
        if dm and method == "GET":
            return self._with_slot(dm.group(1), lambda: self._delta_get(dm.group(1), query, prefer))
        return Reply(400, _error("BadRequest", f"Resource not found for the segment '{path}'."))

    def _with_slot(self, who: str, work: Callable[[], Reply]) -> Reply:
        key = self._resolve(who)
        if key is None:
            return Reply(404, _error("ErrorInvalidUser", f"The requested user '{who}' is invalid."))
        with self.changed:
            self.in_flight[key] = self.in_flight.get(key, 0) + 1
            self.max_in_flight[key] = max(self.max_in_flight.get(key, 0), self.in_flight[key])
            over = self.in_flight[key] > MAX_PER_MAILBOX
            self.changed.notify_all()
        try:
            if over:
                return Reply(
                    429,
                    _error(
                        "ApplicationThrottled", "Application is over its MailboxConcurrency limit."
                    ),
                    {"Retry-After": "1"},
                )
            gate = self.gate
            if gate is not None:
                gate.wait(timeout=30)
            return work()
        finally:
            with self.changed:
                self.in_flight[key] -= 1
                self.changed.notify_all()

    def _delta_get(self, who: str, query: dict[str, str], prefer: dict[str, str]) -> Reply:
        with self.lock:
            key = self._resolve(who)
            assert key is not None
            box = self.mailboxes[key]
            if box.denied:
                return Reply(
                    403,
                    _error(
                        "ErrorAccessDenied",
                        "Access to OData is disabled: Blocked by tenant configured AppOnly AccessPolicy settings.",
                    ),
                )
            size = int(prefer.get("odata.maxpagesize", self.default_page_size))
            if "$skiptoken" in query:
                pages = self._pages.get(query["$skiptoken"])
                if pages is None or pages.mailbox != key:
                    return _gone()
                return self._page(box, pages, size, prefer)
            if "$deltatoken" in query:
                known = self._delta.get(query["$deltatoken"])
                if known is None or known[0] != key:
                    return _gone()
                _, start, end, before = known
            else:
                try:
                    start = datetime.fromisoformat(query["startDateTime"].replace("Z", "+00:00"))
                    end = datetime.fromisoformat(query["endDateTime"].replace("Z", "+00:00"))
                except (KeyError, ValueError):
                    return Reply(
                        400,
                        _error(
                            "ErrorInvalidParameter", "startDateTime and endDateTime are required."
                        ),
                    )
                if start.tzinfo is None:
                    start, end = start.replace(tzinfo=UTC), end.replace(tzinfo=UTC)
                before = {}
            view = self._view(box, start, end)
            rows: list[dict[str, Any]] = []
            for iid, inst in view.items():
                if before.get(iid) != inst["changeKey"]:
                    rows.append(inst)
            for iid in before:
                if iid not in view:
                    reason = "changed" if self._exists(box, iid) else "deleted"
                    rows.append(
                        {
                            "@odata.type": "#microsoft.graph.event",
                            "id": iid,
                            "@removed": {"reason": reason},
                        }
                    )
            token = secrets.token_urlsafe(24)
            self._delta[token] = (key, start, end, {i: v["changeKey"] for i, v in view.items()})
            return self._page(box, _Pages(key, rows, token), size, prefer)

    def _page(self, box: Mailbox, pages: _Pages, size: int, prefer: dict[str, str]) -> Reply:
        rows, rest = pages.rows[:size], pages.rows[size:]
        base = self.public_graph_url or self.graph_url
        user = f"{base}/users/{quote(box.address, safe='@')}/calendarView/delta"
        body: dict[str, Any] = {"@odata.context": f"{base}/$metadata#Collection(event)"}
        out = [self._render(r, prefer) for r in rows]
        body["value"] = out + out if self.replay_rows else out
        self.served.extend(body["value"])
        if rest:
            skip = secrets.token_urlsafe(24)
            self._pages[skip] = _Pages(pages.mailbox, rest, pages.delta_token)
            body["@odata.nextLink"] = f"{user}?$skiptoken={skip}"
        else:
            body["@odata.deltaLink"] = f"{user}?$deltatoken={pages.delta_token}"
        applied = [f"odata.maxpagesize={size}"]
        if "outlook.timezone" in prefer and self.honour_timezone_preference:
            applied.append(f'outlook.timezone="{prefer["outlook.timezone"]}"')
        if "outlook.body-content-type" in prefer:
            applied.append(f'outlook.body-content-type="{prefer["outlook.body-content-type"]}"')
        return Reply(200, body, {"Preference-Applied": ", ".join(applied)})

    def _render(self, inst: dict[str, Any], prefer: dict[str, str]) -> dict[str, Any]:
        if "@removed" in inst:
            return dict(inst)
        out = {k: v for k, v in inst.items() if not k.startswith("_")}
        out["@odata.etag"] = f'W/"{inst["changeKey"]}"'
        label = prefer.get("outlook.timezone") if self.honour_timezone_preference else None
        for key in ("start", "end"):
            value: datetime = inst[f"_{key}"]
            name = label or inst[f"_{key}_tz"]
            shown = value if inst.get("isAllDay") else value.astimezone(zone(name))
            out[key] = {"dateTime": _graph_dt(shown), "timeZone": name}
        body = dict(inst.get("body") or {"contentType": "text", "content": ""})
        if prefer.get("outlook.body-content-type") == "text" and body.get("contentType") == "html":
            body = {"contentType": "text", "content": _html_to_text(str(body.get("content", "")))}
        out["body"] = body
        return out

    # --- recurrence expansion ----------------------------------------------------------
    def _view(self, box: Mailbox, start: datetime, end: datetime) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for ev in box.events.values():
            if ev.get("recurrence"):
                out.update(self._series(box, ev, start, end))
                continue
            s, e = _span(ev)
            if s < end and e > start:
                out[ev["id"]] = _instance(ev, "singleInstance", ev["id"], s, e)
        return out

    def _series(
        self, box: Mailbox, master: dict[str, Any], start: datetime, end: datetime
    ) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        mid = master["id"]
        first, first_end = _span(master)
        duration = first_end - first
        exceptions = box.exceptions.get(mid, {})
        cancelled = box.cancelled.get(mid, set())
        for original in _occurrences(master, until=end):
            if original in cancelled:
                continue
            iid = _instance_id(mid, original)
            if original in exceptions:
                merged = {**master, **exceptions[original]}
                merged.pop("recurrence", None)
                s, e = (
                    _span(merged)
                    if "start" in exceptions[original]
                    else (original, original + duration)
                )
                if s < end and e > start:
                    out[iid] = _instance(merged, "exception", iid, s, e, mid, original)
            elif original < end and original + duration > start:
                out[iid] = _instance(
                    master, "occurrence", iid, original, original + duration, mid, original
                )
        # An exception moved into the window from an original start outside it.
        for original, changes in exceptions.items():
            iid = _instance_id(mid, original)
            if iid in out or original in cancelled or "start" not in changes:
                continue
            merged = {**master, **changes}
            merged.pop("recurrence", None)
            s, e = _span(merged)
            if (
                s < end
                and e > start
                and original in set(_occurrences(master, until=original + timedelta(seconds=1)))
            ):
                out[iid] = _instance(merged, "exception", iid, s, e, mid, original)
        return out

    def _exists(self, box: Mailbox, iid: str) -> bool:
        if iid in box.events:
            return True
        mid, _, stamp = iid.rpartition("_occ_")
        if not mid or mid not in box.events:
            return False
        original = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return original not in box.cancelled.get(mid, set())

    # --- $batch ------------------------------------------------------------------------
    def _batch(self, body: Any, auth: str) -> Reply:
        reqs = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(reqs, list) or not reqs:
            return Reply(400, _error("BadRequest", "Invalid batch payload format."))
        if len(reqs) > 20:
            return Reply(
                400, _error("BadRequest", "Number of requests in batch exceeds the limit of 20.")
            )
        answers = []
        for req in reqs:
            headers = {str(k).lower(): [str(v)] for k, v in (req.get("headers") or {}).items()}
            headers["authorization"] = [auth]
            url = str(req.get("url", ""))
            reply = self.graph(
                str(req.get("method", "GET")),
                url if url.startswith("/") else "/" + url,
                headers,
                req.get("body"),
                batched=True,
            )
            answers.append(
                {
                    "id": req.get("id"),
                    "status": reply.status,
                    "headers": {"Content-Type": "application/json", **reply.headers},
                    "body": reply.body,
                }
            )
        # The docs warn responses may come back in any order: make sure clients use ids.
        return Reply(200, {"responses": answers[::-1]})

    # --- subscriptions and notifications ------------------------------------------------
    def _subscribe(self, body: Any) -> Reply:
        if not isinstance(body, dict):
            return Reply(400, _error("BadRequest", "Invalid request body."))
        m = re.match(r"^/?users/([^/]+)/events$", str(body.get("resource", "")), re.I)
        key = self._resolve(unquote(m.group(1))) if m else None
        if key is None:
            return Reply(400, _error("ExtensionError", "Resource not found or not supported."))
        if self.mailboxes[key].denied:
            return Reply(
                403,
                _error("ExtensionError", "Operation: Create; Exception: [Status Code: Forbidden]"),
            )
        url = str(body.get("notificationUrl", ""))
        if not url.startswith("https://"):
            return Reply(400, _error("ValidationError", "NotificationUrl must be https."))
        try:
            expires = datetime.fromisoformat(str(body["expirationDateTime"]).replace("Z", "+00:00"))
        except (KeyError, ValueError):
            return Reply(400, _error("ValidationError", "expirationDateTime is required."))
        now = self.clock()
        if not now < expires <= now + MAX_SUBSCRIPTION:
            return Reply(
                400,
                _error(
                    "ValidationError",
                    "Subscription expiration can only be 10070 minutes in the future.",
                ),
            )
        if len(str(body.get("clientState", ""))) > 128:
            return Reply(400, _error("ValidationError", "clientState is too long."))
        for target in filter(None, [url, body.get("lifecycleNotificationUrl")]):
            if not self._validate_endpoint(str(target)):
                return Reply(
                    400,
                    _error(
                        "ValidationError",
                        "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.",
                    ),
                )
        sub = {
            "@odata.context": f"{self.graph_url}/$metadata#subscriptions/$entity",
            "id": str(uuid.uuid4()),
            "resource": body["resource"],
            "applicationId": self.client_id,
            "changeType": body.get("changeType", ""),
            "clientState": body.get("clientState"),
            "notificationUrl": url,
            "lifecycleNotificationUrl": body.get("lifecycleNotificationUrl"),
            "expirationDateTime": _zulu(expires).replace("Z", ".0000000Z"),
            "creatorId": str(uuid.uuid4()),
            "latestSupportedTlsVersion": body.get("latestSupportedTlsVersion", "v1_2"),
            "_mailbox": key,
        }
        with self.lock:
            self.subscriptions[sub["id"]] = sub
        return Reply(201, {k: v for k, v in sub.items() if not k.startswith("_")})

    def _subscription_change(self, method: str, sub_id: str, body: Any) -> Reply:
        with self.lock:
            sub = self.subscriptions.get(sub_id)
            if sub is None:
                return Reply(404, _error("ResourceNotFound", "The object was not found."))
            if method == "DELETE":
                del self.subscriptions[sub_id]
                return Reply(204)
            try:
                expires = datetime.fromisoformat(
                    str(body["expirationDateTime"]).replace("Z", "+00:00")
                )
            except (KeyError, TypeError, ValueError):
                return Reply(400, _error("ValidationError", "expirationDateTime is required."))
            now = self.clock()
            if not now < expires <= now + MAX_SUBSCRIPTION:
                return Reply(
                    400,
                    _error(
                        "ValidationError",
                        "Subscription expiration can only be 10070 minutes in the future.",
                    ),
                )
            sub["expirationDateTime"] = _zulu(expires).replace("Z", ".0000000Z")
            return Reply(200, {k: v for k, v in sub.items() if not k.startswith("_")})

    def _client(self) -> httpx.Client:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return httpx.Client(verify=ctx, trust_env=False, timeout=10.0)

    def _validate_endpoint(self, url: str) -> bool:
        token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
        sep = "&" if "?" in url else "?"
        try:
            with self._client() as client:
                resp = client.post(
                    f"{url}{sep}validationToken={quote(token)}",
                    headers={"Content-Type": "text/plain; charset=utf-8"},
                )
        except httpx.HTTPError:
            return False
        return (
            resp.status_code == 200
            and resp.headers.get("content-type", "").startswith("text/plain")
            and resp.text == token
        )

    def _notify(self, box: Mailbox, change: str, event_id: str) -> None:
        with self.lock:
            subs = [s for s in self.subscriptions.values() if s["_mailbox"] == box.address.lower()]
        for sub in subs:
            resource = f"Users/{box.user_id}/Events/{event_id}"
            payload = {
                "value": [
                    {
                        "subscriptionId": sub["id"],
                        "subscriptionExpirationDateTime": sub["expirationDateTime"],
                        "changeType": change,
                        "resource": resource,
                        "resourceData": {
                            "@odata.type": "#Microsoft.Graph.Event",
                            "@odata.id": resource,
                            "id": event_id,
                        },
                        "clientState": sub["clientState"],
                        "tenantId": self.tenant_id,
                    }
                ]
            }
            self.post_notification(sub["notificationUrl"], payload)

    def post_notification(self, url: str, payload: dict[str, Any]) -> int:
        """POST a notification collection as Graph does (also used to send lifecycle ones)."""
        try:
            with self._client() as client:
                status = client.post(url, json=payload).status_code
        except httpx.HTTPError:
            status = 0
        with self.lock:
            self.deliveries.append((url, status))
        return status

    # --- helpers -----------------------------------------------------------------------
    def _box(self, address: str) -> Mailbox:
        key = self._resolve(address)
        if key is None:
            raise KeyError("no such mailbox in the fake")
        return self.mailboxes[key]

    def _resolve(self, who: str) -> str | None:
        who = who.lower()
        if who in self.mailboxes:
            return who
        for key, box in self.mailboxes.items():
            if box.user_id == who:
                return key
        return None


# --- pure helpers ------------------------------------------------------------------------------


def _aad(error: str, code: int, text: str) -> dict[str, Any]:
    trace = str(uuid.uuid4())
    return {
        "error": error,
        "error_description": f"AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {uuid.uuid4()} Timestamp: 2026-01-01 00:00:00Z",
        "error_codes": [code],
        "timestamp": "2026-01-01 00:00:00Z",
        "trace_id": trace,
        "correlation_id": str(uuid.uuid4()),
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }


def _gone() -> Reply:
    return Reply(410, _error("syncStateNotFound", "The sync state generation is not found."))


def _instance_id(master_id: str, original: datetime) -> str:
    return f"{master_id}_occ_{original.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def _span(ev: dict[str, Any]) -> tuple[datetime, datetime]:
    if ev.get("isAllDay"):
        s = date.fromisoformat(str(ev["start"]["dateTime"])[:10])
        e = date.fromisoformat(str(ev["end"]["dateTime"])[:10])
        return datetime.combine(s, time(), UTC), datetime.combine(e, time(), UTC)
    return _parse_dtz(ev["start"]).astimezone(UTC), _parse_dtz(ev["end"]).astimezone(UTC)


def _instance(
    ev: dict[str, Any],
    kind: str,
    iid: str,
    start: datetime,
    end: datetime,
    master: str | None = None,
    original: datetime | None = None,
) -> dict[str, Any]:
    inst = {k: v for k, v in ev.items() if k not in ("recurrence", "start", "end")}
    inst.update(
        {
            "id": iid,
            "type": kind,
            "seriesMasterId": master,
            "isCancelled": bool(ev.get("isCancelled", False)),
            "originalStartTimeZone": ev["start"].get("timeZone", "UTC"),
            "originalEndTimeZone": ev["end"].get("timeZone", "UTC"),
            "recurrence": None,
            "_start": start,
            "_end": end,
            "_start_tz": ev["start"].get("timeZone", "UTC"),
            "_end_tz": ev["end"].get("timeZone", "UTC"),
        }
    )
    if original is not None:
        inst["originalStart"] = _zulu(original)
    # The change key moves whenever anything the client can see moves.
    visible = json.dumps(
        {k: v for k, v in inst.items() if not k.startswith("_")}, sort_keys=True, default=str
    )
    visible += f"|{start.isoformat()}|{end.isoformat()}"
    inst["changeKey"] = base64.b64encode(hashlib.sha256(visible.encode()).digest()[:15]).decode()
    return inst


def _occurrences(master: dict[str, Any], until: datetime) -> Iterator[datetime]:
    """Original starts (UTC) of a Graph recurrence, in the recurrence's own time zone."""
    pattern, rng = master["recurrence"]["pattern"], master["recurrence"]["range"]
    tz = zone(str(rng.get("recurrenceTimeZone") or master["start"].get("timeZone") or "UTC"))
    if master.get("isAllDay"):
        wall = time()
        tz = UTC
    else:
        wall = _parse_dtz(master["start"]).astimezone(tz).time()
    first = date.fromisoformat(str(rng["startDate"]))
    last = date.fromisoformat(str(rng["endDate"])) if rng.get("type") == "endDate" else None
    count = int(rng.get("numberOfOccurrences") or 0) if rng.get("type") == "numbered" else None
    interval = int(pattern.get("interval") or 1)
    kind = pattern["type"]
    days = {_WEEKDAYS.index(d.lower()) for d in pattern.get("daysOfWeek") or []}
    week_start = _WEEKDAYS.index(str(pattern.get("firstDayOfWeek") or "sunday").lower())
    anchor = first - timedelta(days=(first.weekday() - week_start) % 7)
    seen = 0
    day = first
    for _ in range(20000):
        if last is not None and day > last:
            return
        if count is not None and seen >= count:
            return
        if kind == "daily":
            hit = (day - first).days % interval == 0
        elif kind == "weekly":
            hit = day.weekday() in days and ((day - anchor).days // 7) % interval == 0
        elif kind == "absoluteMonthly":
            months = (day.year - first.year) * 12 + day.month - first.month
            hit = day.day == int(pattern.get("dayOfMonth") or first.day) and months % interval == 0
        else:
            raise NotImplementedError(f"fake Graph cannot expand {kind} recurrences")
        if hit:
            seen += 1
            start = datetime.combine(day, wall, tz).astimezone(UTC)
            if start >= until:
                return
            yield start
        day += timedelta(days=1)


def _handler_for(fake: FakeGraph) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else every small response waits ~40 ms for an ACK

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            headers: dict[str, list[str]] = {}
            for name, value in self.headers.items():
                headers.setdefault(name.lower(), []).append(value)
            reply = self._route(parts.path, parts.query, headers, raw)
            if reply.raw is not None:
                data = reply.raw
            elif reply.body is None:
                data = b""
            else:
                data = json.dumps(reply.body).encode()
            self.send_response(reply.status)
            if data:
                self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, path: str, query: str, headers: dict[str, list[str]], raw: bytes) -> Reply:
            m = re.match(r"^/([^/]+)/v2\.0/\.well-known/openid-configuration$", path)
            if m and self.command == "GET":
                return fake._discovery(m.group(1))
            m = re.match(r"^/([^/]+)/oauth2/v2\.0/token$", path)
            if m and self.command == "POST":
                form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                return fake._token(m.group(1), form)
            if path.startswith("/v1.0/"):
                with fake.lock:
                    injected = fake._raw.pop(0) if fake._raw else None
                if injected is not None:
                    return injected
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    return Reply(400, _error("BadRequest", "Unable to read JSON request payload."))
                target = path[len("/v1.0") :] + (f"?{query}" if query else "")
                return fake.graph(self.command, target, headers, body)
            return Reply(404, _error("NotFound", "No such endpoint."))

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

    return Handler
