"""Logging to stderr, or natively to journald when systemd connected stderr to it.

Under systemd, stderr is a journal stream and each line may start with a ``<N>`` syslog
priority (sd-daemon(3)), so warnings and errors keep their level in ``journalctl -p``.
Nothing at INFO or above may carry a name, address or phone number: log staff ids, counts
and rule ids only.

Libraries do not keep that rule: caldav logs a malformed reply's whole body at INFO through
the *root* logger, exchangelib logs request XML at ERROR, httpx logs request URLs (mailbox
addresses) at INFO. So :func:`setup` caps each library's logger, and the handler itself lets
a record that is not syncd's through only at WARNING or above, without its traceback (an
exception's text may quote the server's reply). syncd's sources report every failure in
their own words.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


# Library loggers and the most they may say. WARNING is the floor for all of them; these
# are the ones known to say too much even there.
LIBRARY_CAPS: dict[str, int] = {
    "caldav": logging.ERROR,  # WARNING "Deviation from expectations found: <the server's XML>"
    "exchangelib": logging.CRITICAL,  # ERROR with whole request XML (mailbox addresses)
    "httpx": logging.WARNING,  # INFO: every request URL, /users/{mailbox}/...
    "httpcore": logging.WARNING,
    "urllib3": logging.WARNING,
    "requests": logging.WARNING,
    "requests_ntlm": logging.WARNING,
    "msal": logging.WARNING,
    "uvicorn": logging.WARNING,
    "uvicorn.error": logging.WARNING,
    "uvicorn.access": logging.CRITICAL,  # client addresses and query strings
    "fastapi": logging.WARNING,
    "alembic": logging.WARNING,
    "radicale": logging.WARNING,
    "mail.log": logging.WARNING,  # aiosmtpd, in the demo
}


def _ours(record: logging.LogRecord) -> bool:
    return record.name == "syncd" or record.name.startswith("syncd.")


class LibraryFilter(logging.Filter):
    """Drops a record from outside syncd below WARNING, whatever its logger's level: the
    root logger (caldav's ``logging.info(body)``) and loggers nobody capped included."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _ours(record) or record.levelno >= logging.WARNING


class SafeFormatter(logging.Formatter):
    """Formats a library's record without its traceback or stack; syncd's own as is."""

    def format(self, record: logging.LogRecord) -> str:
        if _ours(record) or not (record.exc_info or record.exc_text or record.stack_info):
            return super().format(record)
        bare = logging.makeLogRecord(record.__dict__)
        kind = record.exc_info[1] if record.exc_info else None
        bare.exc_info = bare.exc_text = bare.stack_info = None
        if kind is not None:
            bare.msg, bare.args = f"{record.getMessage()} ({type(kind).__name__})", None
        return super().format(bare)


class JournalFormatter(SafeFormatter):
    def format(self, record: logging.LogRecord) -> str:
        prio = _PRIORITY.get(record.levelno, 6)
        # One record per line: a multi-line message would lose its priority after line one.
        return f"<{prio}>" + super().format(record).replace("\n", " | ")


def stderr_is_journal(environ: dict[str, str] | None = None) -> bool:
    env = dict(os.environ) if environ is None else environ
    stream = env.get("JOURNAL_STREAM", "")
    if not stream:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


def setup(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Configure logging for a syncd process (``stream`` defaults to stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if stream is None and stderr_is_journal():
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(LibraryFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries log request bodies at DEBUG (calendar data = personal data): even with
    # --log-level DEBUG they stay at their cap; syncd's own DEBUG lines say what happened.
    for name, cap in LIBRARY_CAPS.items():
        logging.getLogger(name).setLevel(max(cap, root.level))
