"""Notifications: what to say (render) apart from how it travels (one module per channel).

Channels register like calendar sources: :data:`CHANNELS` maps a kind to its class, and
:func:`load` imports it only when used. Building a notifier from the config happens above
this layer (:func:`syncd.config.build_notifier`): notify does not know the config.
"""

from __future__ import annotations

import importlib

from syncd.errors import ConfigError
from syncd.notify.base import Message, Notifier, NotifierOptions
from syncd.notify.render import render_digest, render_morning

# kind -> "module:Class"; imported on first use, so an unused channel's libraries never load.
CHANNELS: dict[str, str] = {
    "email": "syncd.notify.email:EmailNotifier",
    "memory": "syncd.notify.memory:MemoryNotifier",
}

TEST_ONLY: frozenset[str] = frozenset({"memory"})
"""Kinds for tests and dry runs, left out of what error messages offer."""


def load(kind: str) -> type[Notifier]:
    """The Notifier class for a channel ``kind``."""
    try:
        target = CHANNELS[kind]
    except KeyError:
        offered = ", ".join(sorted(set(CHANNELS) - TEST_ONLY))
        raise ConfigError(f"unknown notification channel {kind!r}; expected {offered}") from None
    module_name, _, cls_name = target.partition(":")
    cls: type[Notifier] = getattr(importlib.import_module(module_name), cls_name)
    return cls


__all__ = [
    "CHANNELS",
    "TEST_ONLY",
    "Message",
    "Notifier",
    "NotifierOptions",
    "load",
    "render_digest",
    "render_morning",
]
