"""Notifications: what to say (render) apart from how it travels (one module per channel)."""

from syncd.notify.base import Message, Notifier
from syncd.notify.render import render_digest, render_morning

__all__ = ["Message", "Notifier", "render_digest", "render_morning"]
