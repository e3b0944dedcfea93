"""The whole-text matcher's pre-filter (syncd.domain.phones.matcher_may_find) is sound.

It may skip PhoneNumberMatcher only where the matcher could find no valid number: the
bounds come from phonenumbers' metadata, and whenever the pre-filter says "nothing to
find", the matcher indeed finds nothing.
"""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneMetadata

from syncd.domain import phones as ph


def decided_spans(text: str) -> list[tuple[int, int]]:
    """The candidates extract's fast scan finds invalid, as extract collects them."""
    return [
        m.span()
        for m in ph.PHONE_CANDIDATE.finditer(text)
        if len(m.group(0)) >= 7 and not ph.valid_numbers(m.group(0))
    ]


def test_digit_bounds_hold_for_every_region() -> None:
    shortest = 99
    for cc, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        for region in regions:
            md = (
                PhoneMetadata.metadata_for_nongeo_region(cc)
                if region == "001"
                else PhoneMetadata.metadata_for_region(region)
            )
            if md is None:
                continue
            lengths = [n for n in md.general_desc.possible_length or () if n > 0]
            if lengths:
                shortest = min(shortest, len(str(cc)) + min(lengths))
    gb = PhoneMetadata.metadata_for_region("GB")
    assert gb is not None and gb.international_prefix == "00"
    gb_shortest = min(n for n in gb.general_desc.possible_length if n > 0)
    assert shortest >= ph.MIN_DIGITS_INTERNATIONAL
    # Without "+": a GB number, or the "00" prefix and an international one.
    assert min(gb_shortest, 2 + shortest) >= ph.MIN_DIGITS_NATIONAL


@pytest.mark.parametrize(
    ("text", "may_find"),
    [
        ("contact: 07700 900123\nreturn to office by 17:00", False),  # drama range: invalid
        ("tel 07700900123, mum 07700 900 124", False),
        ("meeting id: 391 442 875 113", False),  # one invalid candidate, every block short
        ("07700 900123 / 01332 123456", True),  # a long run the fast scan cuts
        ("call 0123 8001111", True),  # its second block alone is a valid 0800 number
        ("+44 7700 900123", True),
        ("visit 10:30, flat 3, ls6 2ab", False),  # too few digits in any run
        ("ring +43 1234", True),
        ("tel 07٠٧8001111 ok", True),  # the library reads other digits too (07078001111)
    ],
)
def test_pre_filter_examples(text: str, may_find: bool) -> None:
    assert ph.matcher_may_find(text, decided_spans(text)) is may_find


@settings(max_examples=600, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "0",
                    "07",
                    "07700 900",
                    "01332",
                    "0800",
                    "8001111",
                    "44",
                    "+44",
                    "+",
                    "(0)",
                    "0044",
                    "00",
                    "x",
                    "ext.",
                    "tel ",
                    "\n",
                    ", ",
                    "٠٧",
                    "０７",
                ]
            ),
            st.text(alphabet="0123456789", min_size=1, max_size=7),
            st.sampled_from([" ", "  ", "-", ".", "/", "(", ")", " - ", "–"]),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_when_the_pre_filter_skips_the_matcher_finds_nothing(parts: list[str]) -> None:
    text = "tel " + "".join(parts) + " ok"
    if not ph.matcher_may_find(text, decided_spans(text)):
        assert ph.matcher_numbers.__wrapped__(text) == ()
