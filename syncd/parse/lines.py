"""Reading single iCalendar content lines (RFC 5545 3.1) the way icalendar does.

Only the shapes icalendar reads without surprises are accepted; anything else raises
:class:`Bail`, and the caller hands the entry to the full icalendar path.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

from icalendar.parser import unescape_backslash

from syncd.parse.timezones import resolve_tzid

UTC = ZoneInfo("UTC")

_NAME = re.compile(r"[A-Za-z0-9-]+\Z")
# NAME[;params]: with no quote, backslash or caret before the first colon, which is then
# the separator: exactly the lines split_line reads without looking further.
LINE = re.compile(r'([A-Za-z0-9-]+)(?:;([^:"\\^]*))?:').match
_STAMP = re.compile(r"(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(Z?))?\Z")


class Bail(Exception):
    """This line (and so its entry) is for the full icalendar path."""


def split_line(line: str) -> tuple[str, str, str]:
    """(NAME, raw parameters, value) of one unfolded content line."""
    m = LINE(line)
    if m is not None:  # the usual line; anything else takes the careful way below
        name, params = m.groups()
        return name.upper(), params or "", line[m.end() :]
    colon = line.find(":")
    if colon <= 0:
        raise Bail
    head = line[:colon]
    if '"' in head:
        colon = _separator(line)
        head = line[:colon]
    if "\\" in head or "^" in head:
        raise Bail
    semi = head.find(";")
    name = head if semi == -1 else head[:semi]
    if not _NAME.match(name):
        raise Bail
    return name.upper(), ("" if semi == -1 else head[semi + 1 :]), line[colon + 1 :]


def _separator(line: str) -> int:
    quoted = False
    for k, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == ":" and not quoted:
            return k
    raise Bail


def read_params(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    if not raw:
        return out
    if raw.count('"') % 2 or (";" in raw and '"' in raw):
        raise Bail
    for part in raw.split(";"):
        key, eq, value = part.partition("=")
        if not eq:
            raise Bail
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = value[1:-1]
        elif "," in value or '"' in value:
            raise Bail
        out[key.strip().upper()] = value
    return out


def read_when(value: str, params: dict[str, str]) -> tuple[date | datetime, str | None]:
    kind = params.get("VALUE", "").upper()
    m = _STAMP.match(value.strip())
    if m is None or kind not in ("", "DATE", "DATE-TIME"):
        raise Bail
    tzid = params.get("TZID")
    y, mo, d, hh, mi, ss, z = m.groups()
    try:
        if hh is None:
            if tzid is not None or kind == "DATE-TIME":
                raise Bail  # a date with a zone becomes a datetime in icalendar
            return date(int(y), int(mo), int(d)), None
        dt = datetime(int(y), int(mo), int(d), int(hh), int(mi), int(ss))
    except ValueError:
        raise Bail from None
    if tzid is not None:
        if resolve_tzid(tzid) is None:
            raise Bail  # a custom zone needs the file's VTIMEZONE: full path
        return dt, tzid
    if z:
        return dt.replace(tzinfo=UTC), None
    return dt, None


def unescape(value: str) -> str:
    """A TEXT value with its backslash escapes undone, as icalendar reads it."""
    return unescape_backslash(value) if "\\" in value else value
