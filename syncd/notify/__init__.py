"""Notifications: what to say (render) apart from how it travels (one module per channel)."""

from .base import Message, Notifier
from .render import render_digest, render_morning

__all__ = ["Message", "Notifier", "render_digest", "render_morning"]
