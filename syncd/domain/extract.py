"""Pull the lone-working details out of a calendar entry's free text.

Pure and cheap: no I/O, no clock, no logging (every value here is personal data). All
regexes are compiled at import; phone validation is memoised because the same numbers
(the worker's own mobile, a family's landline) recur across a whole calendar.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneMetadata

from syncd.domain.model import Occurrence

DEFAULT_PREFIXES: tuple[str, ...] = ("home visit", "hv", "visit")


@dataclass(frozen=True, slots=True)
class VisitFields:
    """What one entry says. Personal values are kept out of ``repr`` so an accidental log
    line cannot leak them."""

    who: str = field(default="", repr=False)
    postcodes: tuple[str, ...] = field(default=(), repr=False)
    """Valid UK postcodes found anywhere, normalised ("DE4 3LT")."""
    invalid_postcode_label: bool = False
    """A postcode label holds something with digits that is not a valid postcode."""
    phones: tuple[str, ...] = field(default=(), repr=False)
    """Valid numbers (E.164) found anywhere."""
    invalid_contact_label: bool = False
    """A contact label holds a number (4+ digits) that is not a valid number."""
    going_home: bool = False
    office_return: bool = False
    """Returning to the office (or base) with an expected time."""
    purpose: str = field(default="", repr=False)


# --- text clean-up -------------------------------------------------------------------------

_BLOCK_TAG = re.compile(r"<\s*(?:br|/p|/div|/li|/tr|p|div|li|tr)\b[^>]*>", re.I)
_ANY_TAG = re.compile(r"<[^<>]{0,200}>")
_ODD_SPACE = re.compile(r"[\t\xa0\u2007\u202f]")


def _clean(text: str) -> str:
    if "<" in text:
        text = _ANY_TAG.sub(" ", _BLOCK_TAG.sub("\n", text))
    if "&" in text:
        # Unescape after stripping tags so "&lt;Tel&gt;" survives as text.
        text = html.unescape(text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Tabs and no-break spaces become plain spaces; runs of spaces are left (the patterns
    # allow them) because rewriting every entry costs more than the rare case is worth.
    if text.isascii():
        return text.replace("\t", " ") if "\t" in text else text
    return _ODD_SPACE.sub(" ", text) if _ODD_SPACE.search(text) else text


# --- postcodes -----------------------------------------------------------------------------

# The published UK format (outward A9, A99, A9A, AA9, AA99, AA9A; inward 9AA with the
# letters C, I, K, M, O, V never used inward), plus GIR 0AA and BFPO numbers.
_POSTCODE_VALID = re.compile(
    r"(?:GIR 0AA"
    r"|[A-PR-UWYZ](?:\d{1,2}|[A-HK-Y]\d{1,2}|\d[A-HJKPSTUW]|[A-HK-Y]\d[ABEHMNPRVWXY])"
    r" \d[ABD-HJLNP-UW-Z]{2}"
    r"|BFPO \d{1,4})"
)
_POSTCODE_FIND = re.compile(
    r"(?<![A-Za-z0-9])(?:([A-Za-z]{1,2}\d[A-Za-z\d]?)[ \t]{0,3}(\d[A-Za-z]{2})"
    r"|([Gg][Ii][Rr])[ \t]?(0[Aa][Aa])|([Bb][Ff][Pp][Oo])[ \t]?(\d{1,4}))(?![A-Za-z0-9])"
)


def valid_postcode(text: str) -> str:
    """The normalised postcode if ``text`` is exactly one valid UK postcode, else ""."""
    m = _POSTCODE_FIND.fullmatch(text.strip())
    return _normal_postcode(m) if m else ""


def _normal_postcode(m: re.Match[str]) -> str:
    o1, i1, o2, i2, o3, i3 = m.groups()
    pc = (f"{o1} {i1}" if o1 else (f"{o2} {i2}" if o2 else f"{o3} {i3}")).upper()
    return pc if _POSTCODE_VALID.fullmatch(pc) else ""


# Every match but BFPO ends in an inward code ("3LT"); text outside the first and last of
# them cannot hold one, so the slow finder (a lookbehind at every position) skips it.
_INWARD = re.compile(r"\d[A-Za-z]{2}")


def _postcodes(text: str) -> list[str]:
    """Valid postcodes in lower-cased ``text``."""
    lo, hi = 0, len(text)
    if "bfpo" not in text:
        inward = _INWARD.findall(text)
        if not inward:
            return []
        # An outward code (4 chars) and 3 spaces may come before the first inward code; the
        # one character after the last lets the finder's lookahead see what follows.
        lo = max(0, text.find(inward[0]) - 7)
        hi = min(hi, text.rfind(inward[-1]) + 4)
    found = []
    for m in _POSTCODE_FIND.finditer(text, lo, hi):
        pc = _normal_postcode(m)
        if pc:
            found.append(pc)
    return found


# --- labels --------------------------------------------------------------------------------

_SEP = r"[ \t]*(?:[:\-–—=>#]+|\.(?=[ \t]))?[ \t]*"
_LABEL = re.compile(
    r"(?=[vwcfsprtma])(?<![a-z])(?:"
    r"(?P<who>visiting|who|client|service[ \t]+user|child(?:ren)?|family)[ \t]*[:\-–—][ \t]*"
    r"|(?P<pc>p(?:o?s?t?|ots|sot)[ \t]*[/.]?[ \t]*(?:code|cdoe|ocde|coed|cod))" + _SEP + r""
    r"|(?P<tel>contact(?:[ \t]*(?:no|number|num|tel))?|tel(?:e(?:phone)?)?|tle|telephone"
    r"|phone|ph|mob(?:ile|il|le|ie|ble)?|moble|cell)"
    r"(?:[ \t]*(?:no|number|num|nr)(?![a-z]))?" + _SEP + r""
    r"|(?P<ret>return(?:ing)?)" + _SEP + r""
    r"|(?P<addr>add?ress?|adress|addr)" + _SEP + r""
    r"|(?P<purpose>purpose|reason)[ \t]*[:\-–—][ \t]*"
    r")(?![a-z])"
)
# A value ends at the line's end, at the next label, or at a field separator ("," only
# before a word). Opening with a character set lets the engine skip ahead in C.
_VALUE_STOP = re.compile(r"[|;\n,](?:(?<!,)|(?=\s*[a-z]))")
_PLACEHOLDER = re.compile(r"^\W*(?:tbc|tba|tbd|n/?a|none|unknown|not known|\?+)?\W*$", re.I)


# --- phones --------------------------------------------------------------------------------

# "+", or "(" or a digit with no word character or "+" before it; then digits and
# separators ending in a digit. The first character is matched first and checked back with
# lookbehinds, so the pattern opens with a character set and the engine skips ahead in C.
_PHONE_CANDIDATE = re.compile(
    r"[\d+(](?:(?<=\+)[ \t]?\(?\d|(?<=\()(?<![\w+].)\d|(?<=\d)(?<![\w+].))"
    r"[\d \t().\-/]{2,24}\d(?![\w])"
)
_DIGIT = re.compile(r"\d")
_NON_DIGIT = re.compile(r"\D")
# The GB matcher only accepts numbers written with +, a 0 prefix, or 44 and 7+ more digits.
_MATCHER_WORTHY = re.compile(r"\+|(?<!\d)(?:0|44(?:\D?\d){7})")


_DescCheck = tuple[frozenset[int], re.Pattern[str]]


def _desc(desc: object) -> _DescCheck | None:
    pattern = getattr(desc, "national_number_pattern", None)
    if not pattern:
        return None
    return frozenset(getattr(desc, "possible_length", ()) or ()), re.compile(pattern)


class _Types:
    """'Matches any known type' as one pattern per number length: the union of the types
    that allow that length (a type without lengths of its own allows every length)."""

    __slots__ = ("any_length", "by_length")

    def __init__(self, types: list[_DescCheck]) -> None:
        def union(descs: list[_DescCheck]) -> re.Pattern[str] | None:
            alts = [p.pattern for _, p in descs]
            return re.compile("|".join(f"(?:{a})" for a in alts)) if alts else None

        lengths = {n for ls, _ in types for n in ls}
        self.by_length = {
            n: union([d for d in types if not d[0] or n in d[0]]) for n in sorted(lengths)
        }
        self.any_length = union([d for d in types if not d[0]])

    def match(self, nsn: str) -> bool:
        pattern = self.by_length.get(len(nsn), self.any_length)
        return pattern is not None and pattern.fullmatch(nsn) is not None


def _build_plus44() -> list[tuple[re.Pattern[str] | None, _DescCheck, _Types]]:
    """phonenumbers' +44 metadata (GB, GG, IM, JE) with the patterns compiled once.

    ``is_valid_number`` re-looks-up and re-matches ten patterns per call (~15-20 us); this
    is the same decision (region by leading digits or by type, then 'any known type'),
    proven equal to the library by tests/test_extract.py.
    """
    out = []
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[44]:
        md = PhoneMetadata.metadata_for_region(region)
        if md is None:
            continue
        general = _desc(md.general_desc)
        assert general is not None
        types = [
            d
            for d in (
                _desc(getattr(md, name))
                # Any type will do; the usual ones first.
                for name in (
                    "mobile",
                    "fixed_line",
                    "premium_rate",
                    "toll_free",
                    "shared_cost",
                    "voip",
                    "personal_number",
                    "pager",
                    "uan",
                    "voicemail",
                )
            )
            if d is not None
        ]
        lead = re.compile(md.leading_digits) if md.leading_digits else None
        out.append((lead, general, _Types(types)))
    return out


_PLUS44 = _build_plus44()


def _matches(nsn: str, desc: _DescCheck) -> bool:
    lengths, pattern = desc
    return (not lengths or len(nsn) in lengths) and pattern.fullmatch(nsn) is not None


def _known_type(nsn: str, general: _DescCheck, types: _Types) -> bool:
    # A type without lengths of its own takes the general ones, checked here.
    return _matches(nsn, general) and types.match(nsn)


def valid_uk_nsn(nsn: str) -> bool:
    """``phonenumbers.is_valid_number`` for +44 and this national significant number."""
    for lead, general, types in _PLUS44:
        if lead is not None:
            if lead.match(nsn):
                return _known_type(nsn, general, types)
        elif _known_type(nsn, general, types):
            return True
    return False


# Everything but the digits a _PHONE_CANDIDATE match can hold.
_CANDIDATE_SEPARATORS = dict.fromkeys(map(ord, "+ \t().-/"))


def _digits(candidate: str) -> str:
    """The digits of a _PHONE_CANDIDATE match (``_NON_DIGIT.sub("", candidate)``)."""
    return candidate.translate(_CANDIDATE_SEPARATORS)


def _plain_nsn(candidate: str) -> str:
    """The national significant number of a plain UK number (0 + 9-10 digits, or +44),
    else "". ``candidate`` is a _PHONE_CANDIDATE match."""
    digits = _digits(candidate)
    nsn = ""
    if candidate.startswith("+"):
        if digits.startswith("440") and "(0)" in candidate.replace(" ", ""):
            nsn = digits[3:]
        elif digits.startswith("44") and "(" not in candidate:
            nsn = digits[2:]
    elif digits.startswith("0") and len(digits) in (10, 11):
        nsn = digits[1:]
    return nsn if nsn and not nsn.startswith("0") else ""


@lru_cache(maxsize=65536)
def _valid_numbers(candidate: str) -> tuple[str, ...]:
    """Valid numbers in one digit run. A plain national number (0 + 9-10 digits) or
    +44 number takes the fast path, which decides exactly as parse(region GB) +
    is_valid_number; anything else goes through PhoneNumberMatcher."""
    nsn = _plain_nsn(candidate)
    if nsn:
        # One plain UK number: parse would give this very nsn, so the answer is final.
        return (f"+44{nsn}",) if valid_uk_nsn(nsn) else ()
    if not _MATCHER_WORTHY.search(candidate):
        return ()
    out = []
    for m in phonenumbers.PhoneNumberMatcher(candidate, "GB"):
        out.append(phonenumbers.format_number(m.number, phonenumbers.PhoneNumberFormat.E164))
    return tuple(out)


def _matcher_numbers(text: str) -> tuple[str, ...]:
    fmt = phonenumbers.PhoneNumberFormat.E164
    return tuple(
        phonenumbers.format_number(m.number, fmt)
        for m in phonenumbers.PhoneNumberMatcher(text, "GB")
        if phonenumbers.is_valid_number(m.number)
    )


def _label_numbers(value: str) -> tuple[list[str], bool]:
    """(valid numbers, any invalid) for a contact label's value. A number here is 4+ digits;
    one the matcher skips but that parses as valid (a mobile typed without its 0) counts."""
    valid: list[str] = []
    invalid = False
    for m in _PHONE_CANDIDATE.finditer(value):
        cand = m.group(0)
        if len(_digits(cand)) < 4:
            continue
        found = _valid_numbers(cand) or (() if _plain_nsn(cand) else _parsed_valid(cand))
        valid.extend(found)
        invalid |= not found
    return valid, invalid


@lru_cache(maxsize=4096)
def _parsed_valid(candidate: str) -> tuple[str, ...]:
    try:
        num = phonenumbers.parse(candidate, "GB")
    except phonenumbers.NumberParseException:
        return ()
    if not phonenumbers.is_valid_number(num):
        return ()
    return (phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164),)


# --- going home / office return ------------------------------------------------------------

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

_TIME = (
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
# The lookahead (first characters of every _TIME match) lets most positions fail at once.
_TIME_RE = re.compile(r"(?=[\dhbafc@~])" + _TIME)
_PLACE_BARE_HOUR = re.compile(
    r"(?=[obchdt])\b" + _PLACE + r"\s*[-–]?\s*(?:[1-9]|1[0-2])\b(?![:.]?\d)"
)
# A clause ends at a sentence stop; "12.30" and "approx." are not stops.
_CLAUSE_END = re.compile(r"(?<!approx)(?<!abt)[.!?;](?=\s|$)|\n")
_HOME_WORD = re.compile(r"\bhome\b")


def _may_return_to_office(low: str) -> bool:
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


def _may_go_home(low: str) -> bool:
    """False when no _HOME match is possible: every "home" is "home visit" (the match after
    a verb is refused by _NOT_DEST, the one from "home" needs after/from/straight/for), and
    there is no "wfh" nor "work(ing) from home". Titles say "Home visit" all the time."""
    n = low.count("home")
    return (n > 0 and (n != low.count("home visit") or "work" in low)) or "wfh" in low


_NOT_WORDY = re.compile(r"[^a-z\s]")


def _going_home(text: str) -> bool:
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


def _office_return(text: str) -> bool:
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


def _return_value(value: str) -> tuple[bool, bool]:
    """(going_home, office_with_time) for the value of a Return: label."""
    if _RETURN_HOME_VALUE.match(value):
        return True, False
    # "Return: 16:30" has no place but the time is the point; a bare hour needs a place.
    has_time = bool(_TIME_RE.search(value) or _PLACE_BARE_HOUR.search(value))
    return False, has_time


# --- purpose -------------------------------------------------------------------------------

_PURPOSE = re.compile(
    r"\b(?:statutory|stat\s+visit|cin|cp|child\s+protection|child\s+in\s+need|assessment"
    r"|s\.?\s?47|section\s+47|s\.?\s?17|lac|cfc|cared\s+for|early\s+help|review|direct\s+work"
    r"|planning|relationship|welfare|safe\s+and\s+well|unannounced|initial|placement"
    r"|parenting|cwd|core\s+group|pathway|monitoring|c&f|safety\s+plan)\b"
)

# --- who -----------------------------------------------------------------------------------

_FILLER = re.compile(r"\b(?:tbc|tba|tbd|am|pm)\b|" + _TIME + r"|\d{1,2}[:.]\d{2}", re.I)
# The same matches in lower-cased ASCII text (where re.I changes nothing else), about 4x
# faster: case-blind matching is slow and the lookahead lets most positions fail at once.
# Not for other text: re.I also folds letters such as "ſ" and "K" onto ASCII ones.
_FILLER_LOWER = re.compile(r"(?=[\dtapbfhc@~])(?:" + _FILLER.pattern + ")")
_FILLER_HINT = re.compile(r"tb|[ap]m|half", re.I)
_WORDCHAR = re.compile(r"[^\W_]")


@lru_cache(maxsize=64)
def marker_regex(prefixes: tuple[str, ...]) -> re.Pattern[str]:
    """A summary that begins with one of ``prefixes`` (whole words, any case, "Home visit"
    also as "Home-visit"), after any leading punctuation."""
    alts = sorted(
        (r"[\s\-]*".join(re.escape(w) for w in p.split()) for p in prefixes if p.strip()),
        key=len,
        reverse=True,
    )
    return re.compile(r"^[\W_]*(?:" + "|".join(alts) + r")(?![^\W_])", re.I)


def _without_filler(text: str) -> str:
    """``_FILLER.sub(" ", text)``."""
    if not text.isascii():
        return _FILLER.sub(" ", text)
    parts = []
    last = 0
    for m in _FILLER_LOWER.finditer(text.lower()):
        parts.append(text[last : m.start()])
        last = m.end()
    if not parts:
        return text
    parts.append(text[last:])
    return " ".join(parts)


def _who_from_summary(summary: str, marker: re.Pattern[str]) -> str:
    rest = summary
    for _ in range(3):
        m = marker.match(rest)
        if not m:
            break
        rest = rest[m.end() :]
    if _DIGIT.search(rest) or _FILLER_HINT.search(rest):
        rest = _without_filler(rest)
        # A postcode needs an inward code ("3LT"), or is a BFPO number.
        if _INWARD.search(rest) or "bfpo" in rest.lower():
            for m in _POSTCODE_FIND.finditer(rest):
                if _normal_postcode(m):
                    rest = rest.replace(m.group(0), " ")
    return rest.strip(" \t\n-–—:;,.()[]*/#|") if _WORDCHAR.search(rest) else ""


# --- the whole entry -----------------------------------------------------------------------


def _unique(values: list[str]) -> tuple[str, ...]:
    """``values`` without repeats, in first-seen order."""
    return tuple(values) if len(values) < 2 else tuple(dict.fromkeys(values))


def extract(
    occ: Occurrence, *, prefixes: Sequence[str] = DEFAULT_PREFIXES, purpose: bool = True
) -> VisitFields:
    """What ``occ`` records, from its summary, location and description.

    ``prefixes`` are the visit markers a summary may begin with; they are not a name.
    ``purpose=False`` skips looking for the purpose (the rule that needs it is optional).
    Memoised on the entry's text: the daemon re-checks the same entries every poll and a
    recurring series repeats its text in every occurrence.
    """
    return _extract(
        occ.summary, occ.location, occ.description, occ.postal_code, tuple(prefixes), purpose
    )


@lru_cache(maxsize=32768)
def _extract(
    summary: str,
    location: str,
    description: str,
    postal_code: str,
    prefixes: tuple[str, ...],
    purpose: bool,
) -> VisitFields:
    text = _clean(f"{summary}\n{location}\n{description}")
    low = text.lower()
    # Values keep their case when lower() kept every offset (it does for all but rare
    # non-ASCII letters; then values are read from the lowered text).
    src = text if len(low) == len(text) else low
    who = _who_from_summary(summary, marker_regex(tuple(prefixes)))

    postcodes = _postcodes(low)
    invalid_pc = False
    if postal_code.strip():
        pc = valid_postcode(postal_code)
        if pc:
            postcodes.append(pc)
        else:
            invalid_pc = True

    invalid_contact = False
    going_home = office = False
    found_purpose = ""
    label_phones: list[str] = []
    labels = list(_LABEL.finditer(low))
    for i, m in enumerate(labels):
        kind = m.lastgroup
        stop = _VALUE_STOP.search(low, m.end())
        end = stop.start() if stop else len(low)
        if i + 1 < len(labels):
            end = min(end, labels[i + 1].start())
        value = low[m.end() : end].strip()
        if kind == "who":
            if not who and not _PLACEHOLDER.match(value):
                who = src[m.end() : end].strip()
        elif kind == "pc":
            if value and _DIGIT.search(value) and not _postcodes(value):
                invalid_pc = True
        elif kind == "tel":
            valid, invalid = _label_numbers(value)
            label_phones.extend(valid)
            invalid_contact |= invalid
        elif kind == "ret":
            home, off = _return_value(value)
            going_home |= home
            office |= off
        elif kind == "purpose" and not _PLACEHOLDER.match(value):
            found_purpose = src[m.end() : end].strip()

    phones = label_phones
    for m in _PHONE_CANDIDATE.finditer(low):
        cand = m.group(0)
        if len(cand) >= 7:
            phones.extend(_valid_numbers(cand))
    if not phones and _MATCHER_WORTHY.search(low):
        # The fast scan cuts long digit runs ("07700 900123 / 01332 123456") into pieces that
        # hold no whole number. Before an entry is called missing or invalid, the
        # authoritative matcher reads the whole text.
        phones.extend(_matcher_numbers(low))

    if not going_home and _may_go_home(low):
        going_home = _going_home(low)
    if not office and _may_return_to_office(low):
        office = _office_return(low)
    if purpose and not found_purpose:
        pm = _PURPOSE.search(low)
        found_purpose = pm.group(0) if pm else ""

    return VisitFields(
        who=who,
        postcodes=_unique(postcodes),
        invalid_postcode_label=invalid_pc,
        phones=_unique(phones),
        invalid_contact_label=invalid_contact,
        going_home=going_home,
        office_return=office,
        purpose=found_purpose,
    )
