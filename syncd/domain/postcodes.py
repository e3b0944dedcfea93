"""UK postcodes in free text: the published format, found and normalised ("DE4 3LT").

Pure: no I/O, no logging (a postcode is personal data).
"""

from __future__ import annotations

import re

# The published UK format (outward A9, A99, A9A, AA9, AA99, AA9A; inward 9AA with the
# letters C, I, K, M, O, V never used inward), plus GIR 0AA and BFPO numbers.
_POSTCODE_VALID = re.compile(
    r"(?:GIR 0AA"
    r"|[A-PR-UWYZ](?:\d{1,2}|[A-HK-Y]\d{1,2}|\d[A-HJKPSTUW]|[A-HK-Y]\d[ABEHMNPRVWXY])"
    r" \d[ABD-HJLNP-UW-Z]{2}"
    r"|BFPO \d{1,4})"
)
POSTCODE_FIND = re.compile(
    r"(?<![A-Za-z0-9])(?:([A-Za-z]{1,2}\d[A-Za-z\d]?)[ \t]{0,3}(\d[A-Za-z]{2})"
    r"|([Gg][Ii][Rr])[ \t]?(0[Aa][Aa])|([Bb][Ff][Pp][Oo])[ \t]?(\d{1,4}))(?![A-Za-z0-9])"
)


def valid_postcode(text: str) -> str:
    """The normalised postcode if ``text`` is exactly one valid UK postcode, else ""."""
    m = POSTCODE_FIND.fullmatch(text.strip())
    return normal_postcode(m) if m else ""


def normal_postcode(m: re.Match[str]) -> str:
    o1, i1, o2, i2, o3, i3 = m.groups()
    pc = (f"{o1} {i1}" if o1 else (f"{o2} {i2}" if o2 else f"{o3} {i3}")).upper()
    return pc if _POSTCODE_VALID.fullmatch(pc) else ""


# Every match but BFPO ends in an inward code ("3LT"); text outside the first and last of
# them cannot hold one, so the slow finder (a lookbehind at every position) skips it.
INWARD = re.compile(r"\d[A-Za-z]{2}")


def find_postcodes(text: str) -> list[str]:
    """Valid postcodes in lower-cased ``text``."""
    lo, hi = 0, len(text)
    if "bfpo" not in text:
        inward = INWARD.findall(text)
        if not inward:
            return []
        # An outward code (4 chars) and 3 spaces may come before the first inward code; the
        # one character after the last lets the finder's lookahead see what follows.
        lo = max(0, text.find(inward[0]) - 7)
        hi = min(hi, text.rfind(inward[-1]) + 4)
    found = []
    for m in POSTCODE_FIND.finditer(text, lo, hi):
        pc = normal_postcode(m)
        if pc:
            found.append(pc)
    return found
