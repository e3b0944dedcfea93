"""Pull the lone-working details out of a calendar entry's free text.

Pure and cheap: no I/O, no clock, no logging (every value here is personal data). All
regexes are compiled at import. This module reads labels, the person visited and the
purpose, and joins the finders for postcodes (:mod:`syncd.domain.postcodes`), phone numbers
(:mod:`syncd.domain.phones`) and the return plan (:mod:`syncd.domain.returns`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from syncd.domain import phones as ph
from syncd.domain import returns as rt
from syncd.domain.model import Occurrence
from syncd.domain.phones import valid_uk_nsn
from syncd.domain.postcodes import (
    INWARD,
    POSTCODE_FIND,
    find_postcodes,
    normal_postcode,
    valid_postcode,
)

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


_DIGIT = re.compile(r"\d")


# --- purpose -------------------------------------------------------------------------------

_PURPOSE = re.compile(
    r"\b(?:statutory|stat\s+visit|cin|cp|child\s+protection|child\s+in\s+need|assessment"
    r"|s\.?\s?47|section\s+47|s\.?\s?17|lac|cfc|cared\s+for|early\s+help|review|direct\s+work"
    r"|planning|relationship|welfare|safe\s+and\s+well|unannounced|initial|placement"
    r"|parenting|cwd|core\s+group|pathway|monitoring|c&f|safety\s+plan)\b"
)

# --- who -----------------------------------------------------------------------------------

_FILLER = re.compile(r"\b(?:tbc|tba|tbd|am|pm)\b|" + rt.TIME + r"|\d{1,2}[:.]\d{2}", re.I)
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
        if INWARD.search(rest) or "bfpo" in rest.lower():
            for m in POSTCODE_FIND.finditer(rest):
                if normal_postcode(m):
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

    postcodes = find_postcodes(low)
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
            if value and _DIGIT.search(value) and not find_postcodes(value):
                invalid_pc = True
        elif kind == "tel":
            valid, invalid = ph.label_numbers(value)
            label_phones.extend(valid)
            invalid_contact |= invalid
        elif kind == "ret":
            home, off = rt.return_value(value)
            going_home |= home
            office |= off
        elif kind == "purpose" and not _PLACEHOLDER.match(value):
            found_purpose = src[m.end() : end].strip()

    phones = label_phones
    decided: list[tuple[int, int]] = []  # spans of candidates found invalid
    for m in ph.PHONE_CANDIDATE.finditer(low):
        cand = m.group(0)
        if len(cand) >= 7:
            found = ph.valid_numbers(cand)
            if found:
                phones.extend(found)
            else:
                decided.append(m.span())
    if not phones and ph.MATCHER_WORTHY.search(low) and ph.matcher_may_find(low, decided):
        # The fast scan cuts long digit runs ("07700 900123 / 01332 123456") into pieces that
        # hold no whole number. Before an entry is called missing or invalid, the
        # authoritative matcher reads the whole text, unless it cannot find anything there.
        phones.extend(ph.matcher_numbers(low))

    if not going_home and rt.may_go_home(low):
        going_home = rt.going_home(low)
    if not office and rt.may_return_to_office(low):
        office = rt.office_return(low)
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


def clear_memo() -> None:
    """Forget every memoised answer (a cold first cycle, for benchmarks)."""
    _extract.cache_clear()
    ph.valid_numbers.cache_clear()
    ph.parsed_valid.cache_clear()
    ph.matcher_numbers.cache_clear()


__all__ = [
    "DEFAULT_PREFIXES",
    "VisitFields",
    "clear_memo",
    "extract",
    "marker_regex",
    "valid_postcode",
    "valid_uk_nsn",
]
