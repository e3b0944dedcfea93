"""Bytes of an iCalendar payload -> text, within the size limit."""

from __future__ import annotations

from syncd.errors import InputError
from syncd.parse.limits import DEFAULT_LIMITS, Limits


def decode(data: str | bytes, limits: Limits = DEFAULT_LIMITS) -> str:
    """Text of an iCalendar payload: BOMs honoured, then UTF-8, then Windows-1252/Latin-1."""
    if len(data) > limits.max_bytes:
        raise InputError(f"file too large: {len(data)} bytes, the limit is {limits.max_bytes}")
    if isinstance(data, str):
        text = data
    elif data.startswith(b"\xef\xbb\xbf"):
        text = data[3:].decode("utf-8", errors="replace")
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16", errors="replace")
    elif data.startswith(b"B\x00E\x00"):
        text = data.decode("utf-16-le", errors="replace")
    elif data.startswith(b"\x00B\x00E"):
        text = data.decode("utf-16-be", errors="replace")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            # Old Outlook exports are Windows-1252; Latin-1 never fails, as a last resort.
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:
                text = data.decode("latin-1")
    text = text.lstrip("\ufeff")
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text
