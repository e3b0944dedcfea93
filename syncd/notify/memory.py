"""An in-memory notifier: keeps messages instead of sending them. The test fake for the
delivery channel, and handy for dry runs; it can be told to fail like a real server."""

from __future__ import annotations

from syncd.errors import NotifyError
from syncd.notify.base import Message, Notifier


class MemoryNotifier(Notifier):
    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.fail: NotifyError | None = None

    def send(self, message: Message) -> None:
        if self.fail is not None:
            raise self.fail
        self.sent.append(message)
