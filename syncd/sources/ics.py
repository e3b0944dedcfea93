"""ICS backend: a file, a folder of ``*.ics`` files, or an http(s) URL (Outlook "publish").

Each file or URL is one :class:`RawItem` (``kind="ical"``). Files are identified by the
SHA-256 of their bytes. URLs by the server's ETag or Last-Modified, sent back as
If-None-Match / If-Modified-Since, so an unchanged feed costs one request and a 304.

Every sync lists the whole calendar, so deletes are ``known - present``. ``full`` is set
when anything changed (the engine's "calendar suddenly emptied" check relies on it) and
cleared when nothing did: an empty delta is equally true then.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
from pydantic import Field

from syncd.domain.model import RawItem
from syncd.errors import AuthError, InputError, SourceError
from syncd.parse.ical import DEFAULT_LIMITS, Limits, decode
from syncd.secrets import SecretRef
from syncd.sources._common import deleted
from syncd.sources._deadline import Calls, deadline_field
from syncd.sources._tls import tls_context, tls_failure
from syncd.sources._watch import watched_transport
from syncd.sources.base import ChangeSet, Source, SourceOptions, Window

_STATE = "ics"
_RETRYABLE_4XX = frozenset({408, 425, 429})


class IcsOptions(SourceOptions):
    timeout: float = Field(
        default=30,
        description="Seconds of silence from a calendar URL before its request is abandoned.",
    )
    deadline_seconds: float = deadline_field("a calendar URL")
    verify_tls: bool = Field(
        default=True,
        description="Check a calendar URL's TLS certificate (turn off only for a lab server).",
    )
    ca_file: Path | None = Field(
        default=None,
        description="A PEM of the CA(s) to trust for calendar URLs, instead of the system store.",
    )
    username: str | None = Field(
        default=None,
        description="User name for HTTP Basic auth on calendar URLs; none sends no credentials.",
    )
    password: SecretRef | None = Field(
        default=None,
        description="Where the Basic auth password is kept (used with username; none sends an "
        "empty password).",
    )
    max_bytes: int = Field(
        default=DEFAULT_LIMITS.max_bytes,
        description="Largest calendar file or download accepted, in bytes; a bigger one is an "
        "error.",
    )


class IcsSource(Source):
    kind = "ics"
    Options = IcsOptions

    def __init__(self, name: str, options: SourceOptions, secret: Callable[[str], str]) -> None:
        super().__init__(name, options, secret)
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._calls = Calls(name)

    @property
    def _opts(self) -> IcsOptions:
        assert isinstance(self.options, IcsOptions)
        return self.options

    def sync(
        self,
        locator: str,
        state: str | None,
        known: Mapping[str, str],
        window: Window,
    ) -> ChangeSet:
        if _is_url(locator):
            with self._calls.call(self._opts.deadline_seconds):
                return self._sync_url(_http_url(locator), known)
        return self._sync_path(Path(locator), known)

    def abort(self) -> None:
        self._calls.abort()

    def close(self) -> None:
        self.abort()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # --- files ------------------------------------------------------------------------
    def _sync_path(self, path: Path, known: Mapping[str, str]) -> ChangeSet:
        try:
            if path.is_dir():
                files = sorted(
                    p for p in path.iterdir() if p.suffix.lower() == ".ics" and p.is_file()
                )
            elif path.is_file():
                files = [path]
            else:
                # The path names a staff member's file: keep it out of the message.
                raise SourceError(f"{self.name}: calendar file or folder not found", permanent=True)
        except PermissionError:
            raise AuthError(f"{self.name}: permission denied reading the calendar") from None
        except OSError as exc:
            raise SourceError(
                f"{self.name}: calendar folder unreadable ({exc.strerror})", permanent=False
            ) from None
        present: dict[str, RawItem] = {}
        for file in files:
            href = str(file)
            try:
                if file.stat().st_size > self._opts.max_bytes:
                    raise SourceError(
                        f"{self.name}: a calendar file is larger than {self._opts.max_bytes} bytes",
                        permanent=True,
                    )
                raw = file.read_bytes()
            except FileNotFoundError:
                continue  # removed between listing and reading: it is simply gone
            except PermissionError:
                raise AuthError(f"{self.name}: permission denied reading a calendar file") from None
            except OSError as exc:
                raise SourceError(
                    f"{self.name}: calendar file unreadable ({exc.strerror})", permanent=False
                ) from None
            etag = hashlib.sha256(raw).hexdigest()
            present[href] = RawItem(href=href, etag=etag, kind="ical", data=self._text(raw))
        return _changes(present, known, requests=len(files))

    # --- URLs -------------------------------------------------------------------------
    def _sync_url(self, url: str, known: Mapping[str, str]) -> ChangeSet:
        headers = {"Accept": "text/calendar, */*;q=0.5"}
        previous = known.get(url, "")
        if previous.startswith("etag:"):
            headers["If-None-Match"] = previous[len("etag:") :]
        elif previous.startswith("lm:"):
            headers["If-Modified-Since"] = previous[len("lm:") :]
        client = self._http()
        try:
            with client.stream("GET", url, headers=headers) as resp:
                if resp.status_code == 304 and previous:
                    others = sorted(h for h in known if h != url)
                    return ChangeSet(full=bool(others), deletes=others, state=_STATE, requests=1)
                self._raise_for_status(resp)
                raw = self._read_capped(resp)
                etag = resp.headers.get("ETag")
                modified = resp.headers.get("Last-Modified")
        except httpx.TimeoutException:
            raise SourceError(f"{self.name}: calendar URL timed out", permanent=False) from None
        except httpx.HTTPError as exc:
            # TLS failures need a human; refused or reset connections may pass.
            tls = tls_failure(exc)
            if tls is not None:
                raise SourceError(f"{self.name}: calendar URL: {tls}", permanent=True) from None
            raise SourceError(
                f"{self.name}: calendar URL unreachable ({type(exc).__name__})",
                permanent=False,
            ) from None
        if etag:
            tag = f"etag:{etag}"
        elif modified:
            tag = f"lm:{modified}"
        else:
            tag = "sha256:" + hashlib.sha256(raw).hexdigest()
        item = RawItem(href=url, etag=tag, kind="ical", data=self._text(raw))
        return _changes({url: item}, known, requests=1)

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                opts = self._opts
                verify = tls_context(verify_tls=opts.verify_tls, ca_file=opts.ca_file)
                auth = None
                if opts.username is not None:
                    password = self._secret("password") if opts.password is not None else ""
                    auth = httpx.BasicAuth(opts.username, password)
                # trust_env=False: the daemon must not pick up proxies or CA bundles from
                # whichever environment it happens to be started in. The transport lets a
                # call's deadline cut a dripping download (syncd.sources._deadline).
                self._client = httpx.Client(
                    transport=watched_transport(verify=verify, trust_env=False),
                    timeout=opts.timeout,
                    auth=auth,
                    trust_env=False,
                    follow_redirects=True,
                )
            return self._client

    def _raise_for_status(self, resp: httpx.Response) -> None:
        code = resp.status_code
        if code < 400 and code != 304:
            return
        if code in (401, 403):
            raise AuthError(f"{self.name}: calendar URL refused our credentials (HTTP {code})")
        retry_after = _retry_after(resp.headers.get("Retry-After"))
        if code >= 500 or code in _RETRYABLE_4XX or code == 304:
            raise SourceError(
                f"{self.name}: calendar URL failed (HTTP {code})",
                permanent=False,
                retry_after=retry_after,
            )
        raise SourceError(f"{self.name}: calendar URL failed (HTTP {code})", permanent=True)

    def _read_capped(self, resp: httpx.Response) -> bytes:
        cap = self._opts.max_bytes
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_bytes():
            size += len(chunk)
            if size > cap:
                raise SourceError(
                    f"{self.name}: calendar URL sent more than {cap} bytes", permanent=True
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _text(self, raw: bytes) -> str:
        try:
            return decode(raw, Limits(max_bytes=self._opts.max_bytes))
        except InputError as exc:
            raise SourceError(f"{self.name}: {exc}", permanent=True) from None


def _is_url(locator: str) -> bool:
    return locator.lower().startswith(("http://", "https://", "webcal://", "webcals://"))


def _http_url(locator: str) -> str:
    scheme, sep, rest = locator.partition("://")
    if scheme.lower() in ("webcal", "webcals"):
        return "https" + sep + rest  # Outlook and Apple hand out webcal:// links to HTTPS feeds
    return locator


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP-date: the engine's own backoff applies


def _changes(present: dict[str, RawItem], known: Mapping[str, str], *, requests: int) -> ChangeSet:
    upserts = [item for href, item in present.items() if known.get(href) != item.etag]
    deletes = deleted(known, present)
    return ChangeSet(
        full=bool(upserts or deletes),
        upserts=upserts,
        deletes=deletes,
        state=_STATE,
        requests=requests,
    )


__all__ = ["IcsOptions", "IcsSource"]
