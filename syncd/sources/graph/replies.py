"""Graph's answers: one reply (plain or inside a ``$batch``), and what its status means.

Pure: no I/O. Messages carry Graph's error *code* only, never its text, which may quote a
mailbox address.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from syncd.errors import AuthError, SourceError

THROTTLED = frozenset({429, 503, 504})
_RESYNC_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid"})
SAFE_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,80}$")


class SubscriptionGone(SourceError):
    """Graph does not know the subscription any more (404 on renewal): subscribe again."""

    def __init__(self, message: str):
        super().__init__(message, permanent=True)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: Any  # parsed JSON, or None when the body is empty, or NOT_JSON
    attempts: int = 1


class _NotJSON:
    pass


NOT_JSON = _NotJSON()


def error_code(body: Any) -> str:
    err = body.get("error") if isinstance(body, dict) else None
    code = err.get("code") if isinstance(err, dict) else None
    # Only the code: Graph's message text may quote the mailbox address.
    return code if isinstance(code, str) and SAFE_CODE.match(code) else "no error code"


def _error_text(body: Any) -> str:
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return ""
    return f"{err.get('code', '')} {err.get('message', '')}".lower()


def is_resync(reply: Reply) -> bool:
    if reply.status == 410:
        return True
    code = error_code(reply.body).lower()
    return reply.status >= 400 and code in _RESYNC_CODES


def retry_after(reply: Reply, attempt: int) -> float:
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


def throttled_error(name: str, wait: float) -> SourceError:
    return SourceError(f"{name}: Microsoft Graph is throttling us", retry_after=wait)


def raise_for(name: str, reply: Reply) -> None:
    """A delta page must be a 200 with a JSON object."""
    if reply.status != 200:
        raise error_for(name, reply, "calendar")
    if reply.body is NOT_JSON or not isinstance(reply.body, dict):
        raise SourceError(f"{name}: Microsoft Graph sent a malformed response")


def error_for(name: str, reply: Reply, what: str) -> SourceError:
    code = error_code(reply.body)
    status = reply.status
    if status == 401:
        return AuthError(f"{name}: Microsoft Graph rejected the app's token ({code})")
    if status == 403:
        return AuthError(
            f"{name}: Microsoft Graph refused access ({code}): grant the "
            "Calendars.Read application permission with admin consent, and include the "
            "mailbox in the application access policy"
        )
    if what == "subscription" and status == 400 and "validation request" in _error_text(reply.body):
        return SourceError(
            f"{name}: Graph could not validate the notification URL: it must be "
            "public HTTPS and echo validationToken within 10 seconds",
            permanent=True,
        )
    if status == 404:
        return SourceError(f"{name}: Graph {what} not found ({code})", permanent=True)
    if status in THROTTLED:
        return throttled_error(name, retry_after(reply, 0))
    if 400 <= status < 500:
        return SourceError(
            f"{name}: Graph rejected the {what} request ({status} {code})", permanent=True
        )
    return SourceError(f"{name}: Microsoft Graph failed ({status} {code})")


def batch_answers(body: Any, name: str) -> dict[str, Reply]:
    responses = body.get("responses") if isinstance(body, dict) else None
    if not isinstance(responses, list):
        raise SourceError(f"{name}: Microsoft Graph sent a malformed $batch response")
    out: dict[str, Reply] = {}
    for item in responses:
        if not isinstance(item, dict) or not isinstance(item.get("status"), int):
            raise SourceError(f"{name}: Microsoft Graph sent a malformed $batch response")
        headers = item.get("headers")
        if not isinstance(headers, dict):
            headers = {}
        out[str(item.get("id"))] = Reply(
            item["status"],
            {str(k).lower(): str(v) for k, v in headers.items()},
            item.get("body"),
        )
    return out
