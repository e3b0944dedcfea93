"""Time-zone names as calendar clients write them -> :class:`zoneinfo.ZoneInfo`.

Outlook and Exchange write Windows zone ids ("GMT Standard Time"), registry display names
("(UTC+00:00) Dublin, Edinburgh, Lisbon, London"), sometimes quoted or padded. icalendar
ships CLDR's Windows -> IANA table; this module adds the display names and one entry
point shared by the ICS, EWS and Graph code.
"""

from __future__ import annotations

import re
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

# Windows registry display names (current "(UTC..)" and pre-2010 "(GMT..)" spellings share
# the city list, so the key is the text after the offset prefix). Only zones our users
# and the interop corpus meet; anything else still resolves through a VTIMEZONE.
_DISPLAY_CITIES: dict[str, str] = {
    "dublin, edinburgh, lisbon, london": "GMT Standard Time",
    "greenwich mean time : dublin, edinburgh, lisbon, london": "GMT Standard Time",
    "monrovia, reykjavik": "Greenwich Standard Time",
    "casablanca, monrovia, reykjavik": "Greenwich Standard Time",
    "coordinated universal time": "UTC",
    "amsterdam, berlin, bern, rome, stockholm, vienna": "W. Europe Standard Time",
    "brussels, copenhagen, madrid, paris": "Romance Standard Time",
    "belgrade, bratislava, budapest, ljubljana, prague": "Central Europe Standard Time",
    "sarajevo, skopje, warsaw, zagreb": "Central European Standard Time",
    "west central africa": "W. Central Africa Standard Time",
    "athens, bucharest": "GTB Standard Time",
    "athens, bucharest, istanbul": "GTB Standard Time",
    "helsinki, kyiv, riga, sofia, tallinn, vilnius": "FLE Standard Time",
    "helsinki, kiev, riga, sofia, tallinn, vilnius": "FLE Standard Time",
    "jerusalem": "Israel Standard Time",
    "istanbul": "Turkey Standard Time",
    "moscow, st. petersburg": "Russian Standard Time",
    "moscow, st. petersburg, volgograd": "Russian Standard Time",
    "eastern time (us & canada)": "Eastern Standard Time",
    "central time (us & canada)": "Central Standard Time",
    "mountain time (us & canada)": "Mountain Standard Time",
    "pacific time (us & canada)": "Pacific Standard Time",
    "pacific time (us & canada), tijuana": "Pacific Standard Time",
    "atlantic time (canada)": "Atlantic Standard Time",
    "new delhi": "India Standard Time",
    "chennai, kolkata, mumbai, new delhi": "India Standard Time",
    "beijing, chongqing, hong kong, urumqi": "China Standard Time",
    "osaka, sapporo, tokyo": "Tokyo Standard Time",
    "bangkok, hanoi, jakarta": "SE Asia Standard Time",
    "canberra, melbourne, sydney": "AUS Eastern Standard Time",
    "brisbane": "E. Australia Standard Time",
    "perth": "W. Australia Standard Time",
    "auckland, wellington": "New Zealand Standard Time",
    "brasilia": "E. South America Standard Time",
    "brasília": "E. South America Standard Time",
}

_PREFIX = re.compile(r"^\((?:utc|gmt)\s*(?:[+-]\s*\d{1,2}(?::?\d{2})?)?\)\s*", re.IGNORECASE)


def _clean(name: str) -> str:
    return name.strip().strip('"').strip()


@lru_cache(maxsize=512)
def _zone(key: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@lru_cache(maxsize=1024)
def zone_from_windows(name: str) -> ZoneInfo | None:
    """The IANA zone for a Windows zone id or registry display name, else ``None``.

    ``"GMT Standard Time"`` and ``"(UTC+00:00) Dublin, Edinburgh, Lisbon, London"`` both
    give ``Europe/London``.
    """
    clean = _clean(name)
    olson = WINDOWS_TO_OLSON.get(clean)
    if olson is None:
        cities = _PREFIX.sub("", clean).strip().lower()
        windows_id = _DISPLAY_CITIES.get(cities)
        olson = WINDOWS_TO_OLSON.get(windows_id) if windows_id else None
        if windows_id == "UTC":
            olson = "UTC"
    return _zone(olson) if olson else None


@lru_cache(maxsize=1024)
def resolve_tzid(name: str) -> ZoneInfo | None:
    """An IANA name, a Windows id or display name, or a ``/vendor/Area/City`` TZID."""
    clean = _clean(name)
    if not clean:
        return None
    zone = _zone(clean) if "/" not in clean[:1] else None
    if zone is not None:
        return zone
    zone = zone_from_windows(clean)
    if zone is not None:
        return zone
    if clean.startswith("/"):
        # RFC 5545 "globally unique" TZIDs (libical, Lightning): /vendor/.../Europe/London
        parts = clean.strip("/").split("/")
        for i in range(1, len(parts)):
            zone = _zone("/".join(parts[i:]))
            if zone is not None:
                return zone
    return None


__all__ = ["resolve_tzid", "zone_from_windows"]
