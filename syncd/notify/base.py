"""The interface every delivery channel implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True, slots=True)
class Message:
    to: tuple[str, ...]
    subject: str
    text: str
    html: str
    key: str | None = None
    """The idempotency key: the same key on a re-send means the same message."""


class NotifierOptions(BaseModel):
    """Base of each channel's options table in the config."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Secret = Callable[[str], str]
"""Reads the secret an options field names (by field name), when the channel first needs it."""


class Notifier(ABC):
    """Delivers a :class:`Message`; raises :class:`syncd.errors.NotifyError` saying whether
    the failure is permanent. Constructors do no I/O.

    A channel is one module: a subclass with ``kind``, its ``Options`` model and the
    constructor ``(options, secret)``, registered in :data:`syncd.notify.CHANNELS`.
    """

    kind: ClassVar[str]
    Options: ClassVar[type[NotifierOptions]]

    @abstractmethod
    def __init__(self, options: NotifierOptions, secret: Secret) -> None: ...

    @abstractmethod
    def send(self, message: Message) -> None: ...

    def needed_secrets(self) -> tuple[str, ...]:
        """Option fields whose secret is read on every send: read once at start, so a
        missing secret stops the service naming the key instead of at the first alert."""
        return ()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
