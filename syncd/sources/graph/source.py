"""Microsoft 365 calendars through Microsoft Graph: app-only msal + httpx, calendarView delta.

One configured source is one Entra ID app registration in one tenant; each staff member's
calendar is named by a *locator*, their mailbox address (or user object id).

* Sync is ``GET /users/{mailbox}/calendarView/delta`` over the checking window. The state
  keeps the whole ``@odata.deltaLink`` plus the window it was made for: a new window starts
  a new delta round (``full=True``, deletes = known - present).
* ``@removed`` rows (reason ``deleted``, or ``changed`` when moved out of the window) become
  deletes; the same change delivered twice is harmless (etags are compared with ``known``).
* 410 Gone / ``syncStateNotFound`` / ``resyncRequired`` restart the round from scratch.
* 429/503/504 honour ``Retry-After`` a bounded number of times (``sleep`` is injectable),
  then raise ``SourceError(retry_after=...)``. At most 4 requests per mailbox are in flight.
* :meth:`GraphSource.sync_many` syncs up to 20 mailboxes per ``POST /$batch`` round trip.
* :meth:`GraphSource.subscribe` / ``renew`` / ``unsubscribe`` manage change-notification
  subscriptions; :mod:`syncd.sources.graph.notify` handles what Graph POSTs back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import msal
import requests
from pydantic import Field, model_validator

from syncd.domain.model import ItemKind, RawItem, problem_data
from syncd.errors import AuthError, ConfigError, SourceError, SyncStateExpired
from syncd.secrets import SecretRef
from syncd.sources.base import ChangeSet, Source, SourceOptions, SyncRequest, Window
from syncd.sources.graph.mapping import etag_of, to_occurrence
from syncd.sources.graph.notify import Subscription

log = logging.getLogger(__name__)

MAX_BATCH = 20
MAX_CONCURRENT_PER_MAILBOX = 4
_THROTTLED = frozenset({429, 503, 504})
_RESYNC_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid"})
_SAFE_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,80}$")
_AADSTS = re.compile(r"AADSTS(\d{5,7})")
_MAX_PAGES = 10_000
_STATE_VERSION = 1
# What an IT admin should check for the commonest Entra ID refusals.
_AADSTS_HINTS = {
    "7000215": "invalid client secret (use the secret's Value, not its ID)",
    "7000222": "the client secret has expired: create a new one",
    "700016": "no such application (client_id) in this tenant",
    "90002": "no such tenant (tenant_id)",
    "900023": "tenant_id is not a valid tenant",
    "700027": "the certificate signature was rejected: upload the certificate to the app",
    "700024": "the client assertion is outside its validity window: check the clock",
    "7000229": "the app has no service principal in this tenant: grant admin consent",
    "53003": "blocked by a Conditional Access policy",
}


class SubscriptionGone(SourceError):
    """Graph does not know the subscription any more (404 on renewal): subscribe again."""

    def __init__(self, message: str):
        super().__init__(message, permanent=True)


class GraphOptions(SourceOptions):
    """``[[sources]] kind = "graph"``: one Entra ID app registration in one tenant."""

    tenant_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    client_secret: SecretRef | None = None
    certificate: SecretRef | None = None
    """A PEM holding the app's private key and its certificate (instead of a secret)."""
    authority_host: str = "https://login.microsoftonline.com"
    graph_url: str = "https://graph.microsoft.com/v1.0"
    verify_tls: bool = True
    ca_file: Path | None = None
    proxy: str | None = None
    timeout: float = Field(default=30.0, gt=0)
    page_size: int = Field(default=100, ge=1, le=1000)
    max_retries: int = Field(default=4, ge=0, le=10)
    max_retry_wait: float = Field(default=120.0, ge=0)
    """A longer Retry-After is not slept on: the error carries it to the scheduler."""

    @model_validator(mode="after")
    def _check(self) -> GraphOptions:
        if (self.client_secret is None) == (self.certificate is None):
            raise ValueError("give exactly one of client_secret or certificate")
        for key in ("authority_host", "graph_url"):
            if urlsplit(getattr(self, key)).scheme != "https":
                raise ValueError(f"{key} must be an https:// URL (bearer tokens travel on it)")
        return self


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: Any  # parsed JSON, or None when the body is empty or not JSON
    attempts: int = 1


class GraphSource(Source):
    kind = "graph"
    Options = GraphOptions
    batch_size = MAX_BATCH

    def __init__(
        self,
        name: str,
        options: SourceOptions,
        secret: Callable[[str], str],
        *,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not isinstance(options, GraphOptions):
            raise ConfigError(f"source {name}: options are not Graph options")
        super().__init__(name, options, secret)
        self.opts: GraphOptions = options
        self._sleep = sleep
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._app: Any = None
        self._session: requests.Session | None = None
        self._http: httpx.Client | None = None
        self._base = options.graph_url.rstrip("/")
        parts = urlsplit(self._base)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._scope = f"{self._origin}/.default"
        self.http_requests = 0
        """HTTP round trips to Graph so far (a $batch counts once)."""

    # --- the Source contract -----------------------------------------------------------
    def sync(
        self,
        locator: str,
        state: str | None,
        known: Mapping[str, str],
        window: Window,
    ) -> ChangeSet:
        rnd = _Round(self, locator, state, known, window)
        for _ in range(_MAX_PAGES):
            reply = self._request("GET", rnd.url, [locator])
            rnd.requests += reply.attempts
            if _is_resync(reply):
                rnd.restart()
                continue
            self._raise_for(reply)
            if rnd.absorb(reply.body):
                return rnd.result()
        raise SourceError(f"{self.name}: Graph delta did not end after {_MAX_PAGES} pages")

    def sync_many(self, requests: Sequence[SyncRequest]) -> dict[str, ChangeSet | SourceError]:
        """Sync several mailboxes, 20 per ``POST /$batch``; the engine may call this instead
        of one :meth:`sync` per mailbox. Each locator gets its ChangeSet or its own error.

        ``ChangeSet.requests`` counts the Graph requests served for that mailbox (Graph
        throttles each batched request individually); :attr:`http_requests` counts round trips.
        """
        results: dict[str, ChangeSet | SourceError] = {}
        pending: dict[str, _Round] = {}
        for req in requests:
            pending[req.locator] = _Round(self, req.locator, req.state, req.known, req.window)
        rounds_left = _MAX_PAGES
        while pending and rounds_left:
            rounds_left -= 1
            chunk = list(pending.values())[:MAX_BATCH]
            unbatchable = [r for r in chunk if not r.url.startswith(self._base + "/")]
            for rnd in unbatchable:  # a link off our base URL: no $batch, but still synced
                results[rnd.locator] = self._sync_round_alone(rnd)
                del pending[rnd.locator]
            chunk = [r for r in chunk if r.locator in pending]
            if not chunk:
                continue
            delay = self._batch_once(chunk, results)
            for rnd in chunk:
                if rnd.locator in results:
                    pending.pop(rnd.locator, None)
            if delay and pending:
                self._sleep(delay)
        for locator in pending:
            results[locator] = SourceError(f"{self.name}: Graph delta did not end")
        return results

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None
            if self._session is not None:
                self._session.close()
                self._session = None
            self._app = None

    # --- change-notification subscriptions ---------------------------------------------
    def subscribe(
        self,
        locator: str,
        *,
        notification_url: str,
        client_state: str,
        expires: datetime,
        lifecycle_url: str | None = None,
    ) -> Subscription:
        """Ask Graph to POST to ``notification_url`` when events of this mailbox change.

        Graph first checks the URL with a validationToken request, so the endpoint must be
        up (see :func:`syncd.sources.graph.notify.validation_response`).
        """
        if not 1 <= len(client_state) <= 128:
            raise ConfigError("Graph clientState must be 1 to 128 characters")
        body: dict[str, Any] = {
            "changeType": "created,updated,deleted",
            "notificationUrl": notification_url,
            "resource": f"users/{_user_segment(locator)}/events",
            "expirationDateTime": _zulu(expires),
            "clientState": client_state,
            "latestSupportedTlsVersion": "v1_2",
        }
        if lifecycle_url:
            body["lifecycleNotificationUrl"] = lifecycle_url
        reply = self._request("POST", f"{self._base}/subscriptions", [locator], body=body)
        if reply.status not in (200, 201):
            raise self._error_for(reply, "subscription")
        return _subscription(reply.body, locator, self.name)

    def renew(self, sub: Subscription, expires: datetime) -> Subscription:
        url = f"{self._base}/subscriptions/{quote(sub.id, safe='')}"
        reply = self._request(
            "PATCH", url, [sub.locator], body={"expirationDateTime": _zulu(expires)}
        )
        if reply.status == 404:
            raise SubscriptionGone(f"{self.name}: Graph no longer has the subscription")
        if reply.status != 200:
            raise self._error_for(reply, "subscription")
        return _subscription(reply.body, sub.locator, self.name)

    def unsubscribe(self, sub: Subscription) -> None:
        url = f"{self._base}/subscriptions/{quote(sub.id, safe='')}"
        reply = self._request("DELETE", url, [sub.locator])
        if reply.status not in (200, 204, 404):  # 404: already gone, which is what we want
            raise self._error_for(reply, "subscription")

    # --- delta rounds ------------------------------------------------------------------
    def initial_url(self, locator: str, window: Window) -> str:
        start, end = _zulu(window.start), _zulu(window.end)
        return (
            f"{self._base}/users/{_user_segment(locator)}/calendarView/delta"
            f"?startDateTime={start}&endDateTime={end}"
        )

    def check_link(self, link: Any) -> str:
        # A deltaLink comes from stored state or the server: never send our token elsewhere.
        if not isinstance(link, str) or not link.startswith(self._origin + "/"):
            raise SourceError(f"{self.name}: Graph returned a link to another host")
        return link

    def _sync_round_alone(self, rnd: _Round) -> ChangeSet | SourceError:
        try:
            return self.sync(rnd.locator, rnd.state, rnd.known, rnd.window)
        except SourceError as exc:
            return exc

    def _batch_once(
        self, chunk: list[_Round], results: dict[str, ChangeSet | SourceError]
    ) -> float:
        """One POST /$batch for ``chunk``; returns how long to wait before the next one."""
        prefer = ", ".join(self._preferences())
        payload = {
            "requests": [
                {
                    "id": str(i),
                    "method": "GET",
                    "url": rnd.url[len(self._base) :],
                    "headers": {"Prefer": prefer},
                }
                for i, rnd in enumerate(chunk)
            ]
        }
        try:
            reply = self._request(
                "POST", f"{self._base}/$batch", [r.locator for r in chunk], body=payload
            )
            if reply.status != 200:
                raise self._error_for(reply, "batch")
            answers = _batch_answers(reply.body, self.name)
        except SourceError as exc:
            for rnd in chunk:
                results[rnd.locator] = exc
            return 0.0
        delay = 0.0
        for i, rnd in enumerate(chunk):
            sub = answers.get(str(i))
            if sub is None:
                results[rnd.locator] = SourceError(f"{self.name}: Graph $batch answer incomplete")
                continue
            rnd.requests += 1
            try:
                if _is_resync(sub):
                    rnd.restart()
                elif sub.status in _THROTTLED:
                    wait = _retry_after(sub, rnd.throttled)
                    rnd.throttled += 1
                    if rnd.throttled > self.opts.max_retries or wait > self.opts.max_retry_wait:
                        raise self._throttled_error(wait)
                    delay = max(delay, wait)
                else:
                    self._raise_for(sub)
                    if rnd.absorb(sub.body):
                        results[rnd.locator] = rnd.result()
            except SourceError as exc:
                results[rnd.locator] = exc
        return delay

    # --- HTTP --------------------------------------------------------------------------
    def _preferences(self) -> list[str]:
        return [
            f"odata.maxpagesize={self.opts.page_size}",
            'outlook.timezone="UTC"',
            'outlook.body-content-type="text"',
            # Immutable ids survive moves between folders, so hrefs and uids stay stable.
            'IdType="ImmutableId"',
        ]

    def _request(
        self,
        method: str,
        url: str,
        mailboxes: Sequence[str],
        *,
        body: Any = None,
    ) -> _Reply:
        """One Graph call with throttling retries and one token refresh on 401."""
        refreshed = False
        attempts = 0
        while True:
            attempts += 1
            headers = [
                ("Authorization", f"Bearer {self._token()}"),
                ("Accept", "application/json"),
                ("client-request-id", str(uuid.uuid4())),
            ]
            headers += [("Prefer", p) for p in self._preferences()]
            with self._mailbox_slots(mailboxes):
                reply = self._send(method, url, headers, body)
            if reply.status == 401 and not refreshed:
                # A revoked or expired token: ask for a fresh one once before giving up.
                refreshed = True
                self._drop_token()
                continue
            if reply.status in _THROTTLED:
                wait = _retry_after(reply, attempts - 1)
                if attempts > self.opts.max_retries or wait > self.opts.max_retry_wait:
                    raise self._throttled_error(wait)
                log.warning(
                    "%s: Microsoft Graph busy (%d), retrying in %.1fs",
                    self.name,
                    reply.status,
                    wait,
                )
                self._sleep(wait)
                continue
            return _Reply(reply.status, reply.headers, reply.body, attempts)

    def _send(self, method: str, url: str, headers: list[tuple[str, str]], body: Any) -> _Reply:
        client = self._client()
        try:
            resp = client.request(method, url, headers=headers, json=body)
            with self._lock:
                self.http_requests += 1
        except httpx.TimeoutException:
            raise SourceError(f"{self.name}: Microsoft Graph timed out") from None
        except httpx.HTTPError as exc:
            raise _transport_error(self.name, "Microsoft Graph", exc) from None
        parsed: Any = None
        if resp.content:
            try:
                parsed = resp.json()
            except ValueError:
                parsed = _NOT_JSON
        return _Reply(resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, parsed)

    def _raise_for(self, reply: _Reply) -> None:
        if reply.status != 200:
            raise self._error_for(reply, "calendar")
        if reply.body is _NOT_JSON or not isinstance(reply.body, dict):
            raise SourceError(f"{self.name}: Microsoft Graph sent a malformed response")

    def _error_for(self, reply: _Reply, what: str) -> SourceError:
        code = _error_code(reply.body)
        status = reply.status
        if status == 401:
            return AuthError(f"{self.name}: Microsoft Graph rejected the app's token ({code})")
        if status == 403:
            return AuthError(
                f"{self.name}: Microsoft Graph refused access ({code}): grant the "
                "Calendars.Read application permission with admin consent, and include the "
                "mailbox in the application access policy"
            )
        if (
            what == "subscription"
            and status == 400
            and "validation request" in _error_text(reply.body)
        ):
            return SourceError(
                f"{self.name}: Graph could not validate the notification URL: it must be "
                "public HTTPS and echo validationToken within 10 seconds",
                permanent=True,
            )
        if status == 404:
            return SourceError(f"{self.name}: Graph {what} not found ({code})", permanent=True)
        if status in _THROTTLED:
            return self._throttled_error(_retry_after(reply, 0))
        if 400 <= status < 500:
            return SourceError(
                f"{self.name}: Graph rejected the {what} request ({status} {code})", permanent=True
            )
        return SourceError(f"{self.name}: Microsoft Graph failed ({status} {code})")

    def _throttled_error(self, wait: float) -> SourceError:
        return SourceError(f"{self.name}: Microsoft Graph is throttling us", retry_after=wait)

    @contextmanager
    def _mailbox_slots(self, mailboxes: Sequence[str]) -> Iterator[None]:
        # Graph allows 4 concurrent requests per app per mailbox; more only earn 429s.
        # Sorted acquisition keeps two batches over the same mailboxes from deadlocking.
        with ExitStack() as stack:
            for mailbox in sorted({m.lower() for m in mailboxes}):
                with self._lock:
                    slot = self._slots.setdefault(
                        mailbox, threading.BoundedSemaphore(MAX_CONCURRENT_PER_MAILBOX)
                    )
                stack.enter_context(slot)
            yield

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                # trust_env=False: the configured CA and proxy are the whole truth, whatever
                # REQUESTS_CA_BUNDLE / SSL_CERT_FILE / HTTPS_PROXY the host happens to set.
                self._http = httpx.Client(
                    verify=self._tls(),
                    trust_env=False,
                    timeout=self.opts.timeout,
                    proxy=self.opts.proxy,
                    follow_redirects=False,
                )
            return self._http

    def _tls(self) -> ssl.SSLContext | bool:
        if not self.opts.verify_tls:
            return False
        if self.opts.ca_file is not None:
            return ssl.create_default_context(cafile=str(self.opts.ca_file))
        return True

    # --- tokens ------------------------------------------------------------------------
    def _token(self) -> str:
        app = self._msal()
        try:
            result = app.acquire_token_for_client(scopes=[self._scope])
        except requests.RequestException as exc:
            raise _transport_error(self.name, "Microsoft Entra ID", exc) from None
        except Exception as exc:
            # msal/PyJWT reject a malformed or non-RSA key with assorted exception types.
            raise AuthError(
                f"{self.name}: the app credential is unusable ({type(exc).__name__})"
            ) from None
        if isinstance(result, dict) and isinstance(result.get("access_token"), str):
            return str(result["access_token"])
        raise _token_error(self.name, result if isinstance(result, dict) else {})

    def _drop_token(self) -> None:
        with self._lock:
            app = self._app
        if app is not None:
            app.remove_tokens_for_client()

    def _msal(self) -> Any:
        with self._lock:
            if self._app is not None:
                return self._app
            session = requests.Session()
            session.trust_env = False  # else REQUESTS_CA_BUNDLE silently overrides verify=
            session.verify = (
                str(self.opts.ca_file)
                if self.opts.ca_file and self.opts.verify_tls
                else self.opts.verify_tls
            )
            if self.opts.proxy:
                session.proxies = {"https": self.opts.proxy}
            authority = f"{self.opts.authority_host.rstrip('/')}/{self.opts.tenant_id}"
            try:
                app = msal.ConfidentialClientApplication(
                    self.opts.client_id,
                    client_credential=self._credential(),
                    authority=authority,
                    http_client=session,
                    instance_discovery=False,
                    timeout=self.opts.timeout,
                )
            except requests.RequestException as exc:
                session.close()
                raise _transport_error(self.name, "Microsoft Entra ID", exc) from None
            except ValueError:
                session.close()
                # msal's own text names the authority URL; ours says what to check.
                raise AuthError(
                    f"{self.name}: Microsoft Entra ID does not know tenant_id or authority_host"
                ) from None
            self._session, self._app = session, app
            return app

    def _credential(self) -> str | dict[str, str]:
        try:
            if self.opts.client_secret is not None:
                return self._secret("client_secret")
            pem = self._secret("certificate")
        except ConfigError as exc:
            raise AuthError(f"{self.name}: {exc}") from None
        key = re.search(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----", pem, re.S
        )
        cert = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.S)
        if key is None or cert is None:
            raise AuthError(
                f"{self.name}: the certificate PEM needs both the private key and the certificate"
            )
        # Given the certificate, msal signs with PS256 and the SHA-256 thumbprint.
        return {"private_key": key.group(0), "public_certificate": cert.group(0)}


class _Round:
    """One calendar's delta round: the pages seen so far and where to read next."""

    def __init__(
        self,
        source: GraphSource,
        locator: str,
        state: str | None,
        known: Mapping[str, str],
        window: Window,
    ):
        self.source, self.locator, self.state, self.known, self.window = (
            source,
            locator,
            state,
            known,
            window,
        )
        link = _load_state(state, window)
        if link is not None:
            try:
                link = source.check_link(link)
            except SourceError:
                link = None  # state from another configuration: start again
        self.full = link is None
        self.url = link or source.initial_url(locator, window)
        self.items: dict[str, dict[str, Any] | None] = {}
        self.delta_link = ""
        self.requests = 0
        self.restarts = 0
        self.throttled = 0

    def restart(self) -> None:
        if self.restarts >= 2:
            raise SyncStateExpired(f"{self.source.name}: Graph keeps expiring the delta round")
        self.restarts += 1
        self.full = True
        self.items.clear()
        self.url = self.source.initial_url(self.locator, self.window)

    def absorb(self, page: Any) -> bool:
        """Take one delta page; True when the round is complete."""
        name = self.source.name
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
            self.url = self.source.check_link(page["@odata.nextLink"])
            return False
        if page.get("@odata.deltaLink"):
            self.delta_link = self.source.check_link(page["@odata.deltaLink"])
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
            present = {h for h, row in self.items.items() if row is not None}
            deletes = [h for h in self.known if h not in present]
        else:
            deletes = [h for h, row in self.items.items() if row is None and h in self.known]
        state = json.dumps(
            {
                "v": _STATE_VERSION,
                "delta": self.delta_link,
                "window": [_zulu(self.window.start), _zulu(self.window.end)],
            }
        )
        return ChangeSet(
            full=self.full, upserts=upserts, deletes=deletes, state=state, requests=self.requests
        )


class _NotJSON:
    pass


_NOT_JSON = _NotJSON()


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
    if doc.get("window") != [_zulu(window.start), _zulu(window.end)]:
        return None  # the window moved: a delta link only ever covers its own window
    link = doc.get("delta")
    return link if isinstance(link, str) and link else None


def _zulu(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("window and expiry datetimes must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _user_segment(locator: str) -> str:
    # Guest UPNs hold '#', and any of '/?%' would change the path: encode all but '@'.
    return quote(locator.strip(), safe="@")


def _content_etag(row: Mapping[str, Any]) -> str:
    blob = json.dumps(row, sort_keys=True, ensure_ascii=False).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def _error_code(body: Any) -> str:
    err = body.get("error") if isinstance(body, dict) else None
    code = err.get("code") if isinstance(err, dict) else None
    # Only the code: Graph's message text may quote the mailbox address.
    return code if isinstance(code, str) and _SAFE_CODE.match(code) else "no error code"


def _error_text(body: Any) -> str:
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return ""
    return f"{err.get('code', '')} {err.get('message', '')}".lower()


def _is_resync(reply: _Reply) -> bool:
    if reply.status == 410:
        return True
    code = _error_code(reply.body).lower()
    return reply.status >= 400 and code in _RESYNC_CODES


def _retry_after(reply: _Reply, attempt: int) -> float:
    value = reply.headers.get("retry-after", "").strip()
    if value.isdigit():
        return float(value)
    if value:
        # HTTP-date form: measure against the server's own Date, not our clock.
        try:
            then = parsedate_to_datetime(value)
            now = parsedate_to_datetime(reply.headers.get("date", ""))
            return max(0.0, (then - now).total_seconds())
        except (TypeError, ValueError):
            pass
    return float(min(2**attempt, 60))  # no hint: exponential backoff, as Graph advises


def _batch_answers(body: Any, name: str) -> dict[str, _Reply]:
    responses = body.get("responses") if isinstance(body, dict) else None
    if not isinstance(responses, list):
        raise SourceError(f"{name}: Microsoft Graph sent a malformed $batch response")
    out: dict[str, _Reply] = {}
    for item in responses:
        if not isinstance(item, dict) or not isinstance(item.get("status"), int):
            raise SourceError(f"{name}: Microsoft Graph sent a malformed $batch response")
        headers = item.get("headers")
        if not isinstance(headers, dict):
            headers = {}
        out[str(item.get("id"))] = _Reply(
            item["status"],
            {str(k).lower(): str(v) for k, v in headers.items()},
            item.get("body"),
        )
    return out


def _subscription(body: Any, locator: str, name: str) -> Subscription:
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise SourceError(f"{name}: Microsoft Graph sent a malformed subscription")
    try:
        expires = datetime.fromisoformat(str(body.get("expirationDateTime")).replace("Z", "+00:00"))
    except ValueError:
        raise SourceError(f"{name}: Microsoft Graph sent a malformed subscription") from None
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    return Subscription(id=body["id"], locator=locator, expires=expires)


def _transport_error(name: str, service: str, exc: Exception) -> SourceError:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(exc, requests.exceptions.SSLError):
        return SourceError(
            f"{name}: {service}'s TLS certificate is not trusted (see ca_file)", permanent=True
        )
    if isinstance(exc, requests.Timeout):
        return SourceError(f"{name}: {service} timed out")
    return SourceError(f"{name}: cannot reach {service} ({type(exc).__name__})")


def _token_error(name: str, result: Mapping[str, Any]) -> SourceError:
    error = str(result.get("error") or "no error code")
    if not _SAFE_CODE.match(error):
        error = "unreadable error"
    match = _AADSTS.search(str(result.get("error_description") or ""))
    code = match.group(1) if match else ""
    hint = _AADSTS_HINTS.get(code, "check tenant_id, client_id and the credential")
    where = f"{error}, AADSTS{code}" if code else error
    if error in {"temporarily_unavailable", "server_error"}:
        return SourceError(f"{name}: Microsoft Entra ID is unavailable ({where})")
    # Never the description itself: it carries trace ids and, for some codes, the app name.
    return AuthError(f"{name}: Microsoft Entra ID refused the app credentials ({where}): {hint}")
