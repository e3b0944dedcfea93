"""A fast lane through iCalendar text for the common entry, checked against icalendar.

icalendar parses every property of every line into objects (about 4,000 entries a second
here); the throughput target is 20,000 parsed *and* checked. Most entries are one plain
VEVENT: one UID, a handful of simple lines, at most one plain repetition rule with
EXDATEs. For exactly those this module reads the few properties syncd uses, with
icalendar's own unfolding and unescaping, and hands back everything else (overrides,
RDATE, shared UIDs, rule parts it does not expect, quoting it does not expect, custom
zones, anything odd) as iCalendar text for the full icalendar + recurring-ical-events
path. ``tests/test_ical.py`` and ``tests/test_ical_fast_series.py`` prove both lanes give
identical occurrences.

This module is the scanner: it splits a calendar into plain entries and the rest.
:mod:`syncd.parse.simple` reads one entry, :mod:`syncd.parse.lines` one content line.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import lru_cache

from icalendar.parser.content_line import UFOLD

from syncd.parse.lines import Bail, split_line, unescape
from syncd.parse.simple import Rule, Simple, read_event
from syncd.parse.timezones import resolve_tzid


@dataclass(slots=True)
class Scan:
    simple: list[Simple]
    head: list[str]
    zones: list[str]
    blocks: list[list[str]]
    """Entries the fast lane left alone."""

    @property
    def rest(self) -> str | None:
        """A calendar holding every entry the fast lane left alone, or None if there is none."""
        return self.rest_with([])

    def rest_with(self, more: list[list[str]]) -> str | None:
        blocks = self.blocks + more
        if not blocks:
            return None
        return "\r\n".join(
            [
                "BEGIN:VCALENDAR",
                *self.head,
                *self.zones,
                *(line for b in blocks for line in b),
                "END:VCALENDAR",
                "",
            ]
        )


def scan(text: str) -> Scan | None:
    """Split ``text`` into plain entries and the rest; None if the whole needs icalendar."""
    if "\n " in text or "\n\t" in text:
        text = UFOLD.sub("", text)
    text = _drop_known_zone(text)
    # Same split as icalendar's NEWLINE (\r?\n), with str methods: this runs per object.
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line]
    if not lines or lines[0].strip().upper() != "BEGIN:VCALENDAR":
        return None
    if lines[-1].strip().upper() != "END:VCALENDAR":
        return None
    head: list[str] = []
    zones: list[str] = []
    events: list[list[str]] = []
    block: list[str] = []
    kind = ""
    depth = 0
    for line in lines[1:-1]:
        c = line[:1]
        if c in "Bb" and line[:6].upper() == "BEGIN:":
            if depth == 0:
                kind = line[6:].strip().upper()
                block = []
            elif kind == "VEVENT" and line[6:].strip().upper() == "VEVENT":
                return None  # nested entries: the full path reports them
            depth += 1
            block.append(line)
            continue
        if c in "Ee" and line[:4].upper() == "END:":
            depth -= 1
            if depth < 0:
                return None
            block.append(line)
            if depth == 0:
                if kind == "VEVENT":
                    events.append(block)
                elif kind == "VTIMEZONE" and _needs_definition(block):
                    zones.extend(block)
            continue
        if c in "BbEe" and line[:5].upper().startswith(("BEGIN", "END")):
            return None  # "BEGIN;X=1:VALARM": icalendar nests on it, the line test above does not
        if depth:
            block.append(line)
        elif line[:13].upper() == "X-WR-TIMEZONE":
            return None  # a Google zone the full path converts (x-wr-timezone)
        else:
            head.append(line)
    if depth:
        return None
    simple: list[Simple] = []
    rest: list[list[str]] = []
    parsed: list[tuple[list[str], Simple | None]] = []
    uids: dict[str, int] = {}
    for block in events:
        try:
            item = read_event(block)
        except Bail:
            item = None
            # An override (RECURRENCE-ID) or a second copy goes the full path; the entry it
            # shares a UID with must go with it, or the series would be expanded twice.
            for uid in _uids(block):
                uids[uid] = uids.get(uid, 0) + 2
        parsed.append((block, item))
        if item is not None:
            uids[item.uid] = uids.get(item.uid, 0) + 1
    for block, item in parsed:
        if item is not None and uids[item.uid] == 1 and not item.uid.startswith("no-uid-"):
            simple.append(item)
        else:
            rest.append(block)
    return Scan(simple, head, zones, rest)


def _drop_known_zone(text: str) -> str:
    """``text`` without its leading VTIMEZONE if that is one the scan below would drop.

    CalDAV servers repeat the same definition in every object; it is checked once (cached)
    instead of line by line per object. Only a definition before any other component.
    """
    i = text.find("\nBEGIN:VTIMEZONE")
    if i == -1:
        return text
    j = text.find("END:VTIMEZONE", i)
    k = text.find("\n", j)
    if j == -1 or k == -1 or text[: i + 1].upper().count("BEGIN") != 1:
        return text
    if _known_zone(text[i + 1 : k + 1]):
        return text[: i + 1] + text[k + 1 :]
    return text


@lru_cache(maxsize=64)
def _known_zone(block: str) -> bool:
    """Whether ``block`` is one plain VTIMEZONE of a zone known by name (no definition needed)."""
    lines = [line for line in block.replace("\r\n", "\n").split("\n") if line]
    depth = 0
    for n, line in enumerate(lines):
        head = line[:6].upper()
        if head.startswith("BEGIN:"):
            depth += 1
        elif head.startswith("END:"):
            depth -= 1
            if depth == 0 and n != len(lines) - 1:
                return False
        elif head.startswith(("BEGIN", "END")):
            return False
    return (
        depth == 0
        and lines[0] == "BEGIN:VTIMEZONE"
        and lines[-1].rstrip() == "END:VTIMEZONE"
        and not _needs_definition(lines)
    )


def _uids(block: list[str]) -> set[str]:
    """Every value a UID line of ``block`` could be read as (more is only slower)."""
    out: set[str] = set()
    for line in block:
        if line[:4].upper() not in ("UID:", "UID;"):
            continue
        values = [line.partition(":")[2]]
        with contextlib.suppress(Bail):
            values.append(split_line(line)[2])
        out.update(v.strip() for v in values)
        out.update(unescape(v).strip() for v in values)
    return out


def _needs_definition(block: list[str]) -> bool:
    """Whether the full path needs this VTIMEZONE: zones we know by name never use it."""
    for line in block:
        if line[:5].upper() == "TZID:" or line[:5].upper() == "TZID;":
            return resolve_tzid(line.partition(":")[2]) is None
    return True


__all__ = ["Rule", "Scan", "Simple", "scan"]
