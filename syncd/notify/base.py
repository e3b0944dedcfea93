"""The interface every delivery channel implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True, slots=True)
class Message:
    to: tuple[str, ...]
    subject: str
    text: str
    html: str
    key: str | None = None
    """Idempotency key: a re-send of the same notification carries the same key."""


class NotifierOptions(BaseModel):
    """Base of each channel's options table in the config."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Notifier(ABC):
    """Delivers a :class:`Message`; raises :class:`syncd.errors.NotifyError` saying whether
    the failure is permanent. Constructors do no I/O."""

    @abstractmethod
    def send(self, message: Message) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
