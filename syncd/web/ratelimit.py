"""Log lines an outsider can cause, collapsed so that a flood of bad requests cannot fill the
disk or bury the lines that matter: the first few of each kind per minute pass, the rest are
counted and reported as one "suppressed N similar" line when the minute is over.

"Kind" is the logger and the message template (not its arguments), so every variant of
"rejected a change notification: %s" counts together. The clock is injected: time moves in
tests without sleeping.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

_SUMMARY = "syncd_rate_limit_summary"
"""Set on the summary records themselves, which always pass."""


@dataclass(slots=True)
class _Window:
    logger: str
    level: int
    template: str
    start: datetime
    seen: int = 0
    suppressed: int = 0


class RateLimit(logging.Filter):
    """A logging filter: at most ``burst`` records of one kind per ``window``."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        *,
        burst: int = 5,
        window: timedelta = timedelta(minutes=1),
    ):
        super().__init__()
        self.clock, self.burst, self.window = clock, burst, window
        self._windows: dict[tuple[str, str], _Window] = {}
        self._lock = threading.Lock()
        self._attached: list[logging.Logger] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _SUMMARY, False):
            return True
        now = self.clock()
        key = (record.name, str(record.msg))
        with self._lock:
            closed = self._close_windows(now)
            w = self._windows.get(key)
            if w is None:
                w = self._windows[key] = _Window(record.name, record.levelno, key[1], now)
            w.seen += 1
            keep = w.seen <= self.burst
            if not keep:
                w.suppressed += 1
        self._report(closed)
        return keep

    def flush(self) -> None:
        """Report what is suppressed so far (on stop), whatever the clock says."""
        with self._lock:
            closed = [w for w in self._windows.values() if w.suppressed]
            self._windows.clear()
        self._report(closed)

    def attach(self, names: Iterable[str]) -> None:
        for name in names:
            logger = logging.getLogger(name)
            logger.addFilter(self)
            self._attached.append(logger)

    def detach(self) -> None:
        self.flush()
        for logger in self._attached:
            logger.removeFilter(self)
        self._attached.clear()

    def _close_windows(self, now: datetime) -> list[_Window]:
        over = [k for k, w in self._windows.items() if now - w.start >= self.window]
        return [w for w in (self._windows.pop(k) for k in over) if w.suppressed]

    def _report(self, closed: list[_Window]) -> None:
        # Outside the lock: logging the summary passes through this filter again.
        for w in closed:
            logging.getLogger(w.logger).log(
                w.level,
                "suppressed %d similar message(s) in %ds: %s",
                w.suppressed,
                int(self.window.total_seconds()),
                w.template.splitlines()[0][:200] if w.template else "",
                extra={_SUMMARY: True},
            )
