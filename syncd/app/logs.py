"""Logging to stderr, or natively to journald when systemd connected stderr to it.

Under systemd, stderr is a journal stream and each line may start with a ``<N>`` syslog
priority (sd-daemon(3)), so warnings and errors keep their level in ``journalctl -p``.
Nothing at INFO or above may carry a name, address or phone number: log staff ids, counts
and rule ids only.
"""

from __future__ import annotations

import logging
import os
import sys

_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class JournalFormatter(logging.Formatter):
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


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if stderr_is_journal():
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries log request bodies at DEBUG (calendar data = personal data); keep them quiet.
    for noisy in (
        "caldav",
        "urllib3",
        "requests",
        "httpx",
        "httpcore",
        "msal",
        "alembic",
        "radicale",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # exchangelib logs whole request XML (mailbox addresses) at ERROR; our sources report
    # its failures themselves, without personal data.
    logging.getLogger("exchangelib").setLevel(logging.CRITICAL)
