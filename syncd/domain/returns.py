"""The return plan in free text: going home, or back to the office with a time.

Pure: no I/O, no logging. Works on lower-cased text; someone else's move ("mum will be
going home") and negations ("not going home") do not count.
"""

from __future__ import annotations

import re

_THIRD_PARTY = (
    r"mum|mom|mother|dad|father|kids?|children|child|son|daughter|he|she|they|partner|carers?"
    r"|nan|nana|nanna|gran|grandma|grandad|grandparents|baby|boys?|girls?|family|husband"
    r"|wife|sister|brother|siblings?|parents?|uncle|aunt|auntie|boyfriend|girlfriend"
    r"|step(?:dad|mum)|foster|[a-z]+'s"
)
# Words between the subject and the verb phrase: "mum will be", "kids are".
_SUBJECT_BEFORE = re.compile(
    r"(?:^|\b)(?:" + _THIRD_PARTY + r")(?:\s+(?:will|is|are|should|'ll|be|being|gets?|getting"
    r"|comes?|coming|goes|usually|normally|only|not|back|then))*\s*$"
)
_NEGATED = re.compile(r"(?=[nwc])\b(?:not|n't|never|won't|wont|cannot|can't)\s+(?:be\s+)?$")
_NOT_DEST = r"(?!\s*(?:visit|address|tel\b|phone|number|no\b|start|care|office|made|help))"
_HOME = re.compile(
    r"(?=[ghotdrbsfw])\b(?:(?:go|going|goes|head|heading|headed|off|travel(?:l?ing)?|drive|driving"
    r"|return(?:ing)?|back|then|straight|direct(?:ly)?|finish(?:ing)?\s+(?:at|from))"
    r"\s+(?:straight\s+|direct(?:ly)?\s+|back\s+)?home\b" + _NOT_DEST + r""
    r"|home\s+(?:after(?:wards)?|from\s+(?:here|there)|straight\s+after"
    r"|for\s+\d)\b(?!\s*\d)"
    r"|wfh\b|work(?:ing)?\s+from\s+home\b)"
)
_RETURN_HOME_VALUE = re.compile(r"^\W*(?:(?:straight|going|direct(?:ly)?)\s+)*home\b")

TIME = (
    r"(?:(?<![\d.:])(?:[01]?\d|2[0-3])(?:[:.][0-5]\d)?\s*(?:am|pm|a\.m\.|p\.m\.)"
    r"|(?<![\d.:])(?:[01]?\d|2[0-3])[:.][0-5]\d(?![\d])"
    r"|(?<![\d.:])(?:[01]\d|2[0-3])[0-5]\d(?![\d.:])"
    r"|\bhalf\s+(?:[1-9]|1[0-2]|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\b"
    r"|(?:\b(?:by|at|for|about|around|approx|abt|after|c)|@|~)\s*(?:[1-9]|1[0-2])\b(?![:.]?\d)"
    r"|\b(?:[1-9]|1[0-2])\s*(?:o'?clock|ish)\b)"
)
_PLACE = (
    r"(?:office|base|county\s+hall|hub|depot|desk|hq|civic\s+centre|town\s+hall|council\s+house"
    r"|team\s+base)"
)
_OFFICE_ANCHOR = re.compile(
    r"(?=[bria])\b(?:back|return(?:ing)?|(?:in|at)\s+(?:the\s+)?" + _PLACE + r")\b"
)
# The lookahead (first characters of every TIME match) lets most positions fail at once.
_TIME_RE = re.compile(r"(?=[\dhbafc@~])" + TIME)
_PLACE_BARE_HOUR = re.compile(
    r"(?=[obchdt])\b" + _PLACE + r"\s*[-–]?\s*(?:[1-9]|1[0-2])\b(?![:.]?\d)"
)
# A clause ends at a sentence stop; "12.30" and "approx." are not stops.
_CLAUSE_END = re.compile(r"(?<!approx)(?<!abt)[.!?;](?=\s|$)|\n")
_HOME_WORD = re.compile(r"\bhome\b")


def may_return_to_office(low: str) -> bool:
    # Cheap substring tests that let most entries skip the office-return regexes (spelled
    # out: a generator over a tuple of the words costs twice as much).
    return (
        "back" in low
        or "return" in low
        or "office" in low
        or "base" in low
        or "hall" in low
        or "hub" in low
        or "depot" in low
        or "desk" in low
        or "hq" in low
        or "centre" in low
        or "house" in low
    )


def _subject_is_other(text: str, start: int) -> bool:
    """Whether the words just before ``start`` (same clause) make it someone else's move."""
    lo = max(0, start - 40)
    before = text[lo:start]
    cut = max(
        before.rfind("."),
        before.rfind(","),
        before.rfind(";"),
        before.rfind(":"),
        before.rfind("!"),
        before.rfind("?"),
        before.rfind("\n"),
        before.rfind("("),
    )
    before = before[cut + 1 :] if cut >= 0 else before
    return bool(_SUBJECT_BEFORE.search(before) or _NEGATED.search(before))


def may_go_home(low: str) -> bool:
    """False when no _HOME match is possible: every "home" is "home visit" (the match after
    a verb is refused by _NOT_DEST, the one from "home" needs after/from/straight/for), and
    there is no "wfh" nor "work(ing) from home". Titles say "Home visit" all the time."""
    n = low.count("home")
    return (n > 0 and (n != low.count("home visit") or "work" in low)) or "wfh" in low


_NOT_WORDY = re.compile(r"[^a-z\s]")


def going_home(text: str) -> bool:
    # Every match holds "home" or "wfh", and only words and spaces come before it inside the
    # match; so if 40 characters before the first of them hold anything else, no match
    # starts earlier and the scan can start there.
    found = [i for i in (text.find("home"), text.find("wfh")) if i >= 0]
    if not found:
        return False
    first = min(found)
    lo = max(0, first - 40)
    if lo and not _NOT_WORDY.search(text, lo, first):
        lo = 0
    return any(not _subject_is_other(text, m.start()) for m in _HOME.finditer(text, lo))


def _clause(text: str, start: int, limit: int = 60) -> str:
    stop = _CLAUSE_END.search(text, start + 1, start + limit)
    return text[start : stop.start() if stop else start + limit]


def office_return(text: str) -> bool:
    for m in _OFFICE_ANCHOR.finditer(text):
        if _subject_is_other(text, m.start()):
            continue
        seg = _clause(text, m.start())
        if _HOME_WORD.search(seg):
            continue
        # "Back 12.45 for duty" and "back by half 4" are office returns too.
        if _TIME_RE.search(seg) or _PLACE_BARE_HOUR.search(seg):
            return True
    return False


def return_value(value: str) -> tuple[bool, bool]:
    """(going_home, office_with_time) for the value of a Return: label."""
    if _RETURN_HOME_VALUE.match(value):
        return True, False
    # "Return: 16:30" has no place but the time is the point; a bare hour needs a place.
    has_time = bool(_TIME_RE.search(value) or _PLACE_BARE_HOUR.search(value))
    return False, has_time
