"""Phone numbers in free text, valid as ``phonenumbers`` decides with region GB.

Pure: no I/O, no logging (a number is personal data). Validation is memoised because the
same numbers (the worker's own mobile, a family's landline) recur across a whole calendar,
and plain UK numbers skip the library for an equal decision proven by tests/test_extract.py.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneMetadata

# The library's own tables of what its matcher joins digits with, and may open a number
# with (private names: the matcher pre-filter below must cover exactly what it reads).
from phonenumbers.phonenumbermatcher import _LEAD_CLASS_CHARS
from phonenumbers.phonenumberutil import _VALID_PUNCTUATION

# "+", or "(" or a digit with no word character or "+" before it; then digits and
# separators ending in a digit. The first character is matched first and checked back with
# lookbehinds, so the pattern opens with a character set and the engine skips ahead in C.
PHONE_CANDIDATE = re.compile(
    r"[\d+(](?:(?<=\+)[ \t]?\(?\d|(?<=\()(?<![\w+].)\d|(?<=\d)(?<![\w+].))"
    r"[\d \t().\-/]{2,24}\d(?![\w])"
)
# The GB matcher only accepts numbers written with +, a 0 prefix, or 44 and 7+ more digits.
MATCHER_WORTHY = re.compile(r"\+|(?<!\d)(?:0|44(?:\D?\d){7})")


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


# Everything but the digits a PHONE_CANDIDATE match can hold.
_CANDIDATE_SEPARATORS = dict.fromkeys(map(ord, "+ \t().-/"))


def _digits(candidate: str) -> str:
    """The digits of a PHONE_CANDIDATE match (every character that is not a digit removed)."""
    return candidate.translate(_CANDIDATE_SEPARATORS)


def _plain_nsn(candidate: str) -> str:
    """The national significant number of a plain UK number (0 + 9-10 digits, or +44),
    else "". ``candidate`` is a PHONE_CANDIDATE match."""
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
def valid_numbers(candidate: str) -> tuple[str, ...]:
    """Valid numbers in one digit run. A plain national number (0 + 9-10 digits) or
    +44 number takes the fast path, which decides exactly as parse(region GB) +
    is_valid_number; anything else goes through PhoneNumberMatcher."""
    nsn = _plain_nsn(candidate)
    if nsn:
        # One plain UK number: parse would give this very nsn, so the answer is final.
        return (f"+44{nsn}",) if valid_uk_nsn(nsn) else ()
    if not MATCHER_WORTHY.search(candidate):
        return ()
    out = []
    for m in phonenumbers.PhoneNumberMatcher(candidate, "GB"):
        out.append(phonenumbers.format_number(m.number, phonenumbers.PhoneNumberFormat.E164))
    return tuple(out)


# --- the whole-text matcher and its pre-filter ---------------------------------------------

# A run: what one PhoneNumberMatcher candidate can span at most. The matcher opens with up
# to two lead characters ("+", "(") each followed by punctuation, then digit blocks joined by
# at most 4 punctuation characters; a run here is the maximal stretch of that shape.
_PUNCT = "[" + _VALID_PUNCTUATION + "]"
_RUN = re.compile(
    "(?:[" + _LEAD_CLASS_CHARS + "]" + _PUNCT + "{0,4}){0,2}" + r"\d(?:" + _PUNCT + r"{0,4}\d)*"
)
_SPACED_DIGITS = re.compile(r"\d+(?: +\d+)*")
_PLUS = re.compile("[+\uff0b]")
MIN_DIGITS_INTERNATIONAL = 6
"""Fewest digits of a valid number written with "+" (country code and number, e.g. +43 and
4 digits). tests/test_extract.py derives the bound from phonenumbers' metadata."""
MIN_DIGITS_NATIONAL = 7
"""Fewest digits of a valid number written without "+" and read with region GB: a GB
number (7 to 10 digits) or "00" and an international one (2 + 6)."""


def matcher_may_find(text: str, decided: Collection[tuple[int, int]]) -> bool:
    """Whether PhoneNumberMatcher could find a valid number in ``text`` that the fast scan
    did not already rule out. False only when every run either has too few digits to be a
    valid number, or is ASCII digits and spaces exactly as a candidate the fast scan found
    invalid (``decided`` holds those spans) with no block long enough to be valid alone: the
    matcher tries such a run whole, then block by block, and can find nothing.

    An invalid number ("07700 900123", Ofcom's drama range) would otherwise cost about a
    millisecond of matcher time per entry.
    """
    for m in _RUN.finditer(text):
        run = m.group(0)
        digits = sum(c.isdecimal() for c in run)
        if digits < (MIN_DIGITS_INTERNATIONAL if _PLUS.search(run) else MIN_DIGITS_NATIONAL):
            continue
        if (
            m.span() in decided
            # The fast scan's decision equals the library's for ASCII digits only: the
            # library reads "07٠٧8001111" as 07078001111.
            and run.isascii()
            and _SPACED_DIGITS.fullmatch(run)
            and (" " not in run or all(len(b) < MIN_DIGITS_NATIONAL for b in run.split()))
        ):
            continue
        return True
    return False


@lru_cache(maxsize=4096)
def matcher_numbers(text: str) -> tuple[str, ...]:
    """Valid numbers PhoneNumberMatcher finds in ``text``; memoised by text, as the same
    entry text is read again under other prefixes and options."""
    fmt = phonenumbers.PhoneNumberFormat.E164
    return tuple(
        phonenumbers.format_number(m.number, fmt)
        for m in phonenumbers.PhoneNumberMatcher(text, "GB")
        if phonenumbers.is_valid_number(m.number)
    )


def label_numbers(value: str) -> tuple[list[str], bool]:
    """(valid numbers, any invalid) for a contact label's value. A number here is 4+ digits;
    one the matcher skips but that parses as valid (a mobile typed without its 0) counts."""
    valid: list[str] = []
    invalid = False
    for m in PHONE_CANDIDATE.finditer(value):
        cand = m.group(0)
        if len(_digits(cand)) < 4:
            continue
        found = valid_numbers(cand) or (() if _plain_nsn(cand) else parsed_valid(cand))
        valid.extend(found)
        invalid |= not found
    return valid, invalid


@lru_cache(maxsize=4096)
def parsed_valid(candidate: str) -> tuple[str, ...]:
    try:
        num = phonenumbers.parse(candidate, "GB")
    except phonenumbers.NumberParseException:
        return ()
    if not phonenumbers.is_valid_number(num):
        return ()
    return (phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164),)
