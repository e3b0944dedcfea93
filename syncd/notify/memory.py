"""An in-memory notifier: keeps messages instead of sending them. The test fake for the
delivery channel (test-only: not a kind a config can name); it can be told to fail like a
real server."""

from __future__ import annotations

import uuid

from syncd.errors import NotifyError
from syncd.notify.base import Message, Notifier, NotifierOptions, Secret


class MemoryOptions(NotifierOptions):
    """The memory channel has nothing to configure."""


def _no_secret(field: str) -> str:
    raise NotifyError(f"memory notifier has no secret {field!r}", permanent=True)


class MemoryNotifier(Notifier):
    kind = "memory"
    Options = MemoryOptions

    def __init__(self, options: NotifierOptions | None = None, secret: Secret = _no_secret):
        self.options = options or MemoryOptions()
        self.sent: list[Message] = []
        self.ids: list[str] = []
        """Delivery id of each sent message: its key, like a Message-ID derived from it."""
        self.fail: NotifyError | None = None
        """While set, every send raises it."""
        self.fail_next: list[NotifyError] = []
        """Raised one per send, first first, before ``fail`` is consulted."""

    def send(self, message: Message) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)
        if self.fail is not None:
            raise self.fail
        self.sent.append(message)
        self.ids.append(message.key if message.key is not None else uuid.uuid4().hex)
