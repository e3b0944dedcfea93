"""Field extraction from real-looking entry text (syncd.domain.extract)."""

from __future__ import annotations

import random
from datetime import datetime
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.domain import extract as ex
from syncd.domain.extract import VisitFields, extract, valid_postcode, valid_uk_nsn
from syncd.domain.model import Occurrence

TZ = ZoneInfo("Europe/London")
START = datetime(2025, 3, 3, 10, 0, tzinfo=TZ)


def fields(
    summary: str = "HV Smith", description: str = "", location: str = "", **kw: str
) -> VisitFields:
    occ = Occurrence(
        uid="u1",
        start=START,
        end=START.replace(hour=11),
        summary=summary,
        location=location,
        description=description,
        postal_code=kw.get("postal_code", ""),
    )
    return extract(occ)


# --- postcodes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12 Larch Close, Matlock DE4 3LT", "DE4 3LT"),
        ("lives at de43lt", "DE4 3LT"),
        ("postcode de4  3lt i think", "DE4 3LT"),
        ("Church Gresley de119pq - then", "DE11 9PQ"),
        ("Buckingham Palace, London SW1A 1AA", "SW1A 1AA"),
        ("W1A 0AX", "W1A 0AX"),
        ("M1 1AE", "M1 1AE"),
        ("Girobank GIR 0AA", "GIR 0AA"),
        ("sat nav: use DE4 5JB not the house", "DE4 5JB"),
    ],
)
def test_postcode_found_anywhere_in_any_case_and_spacing(text: str, expected: str) -> None:
    assert fields(description=text).postcodes == (expected,)


@pytest.mark.parametrize(
    "text",
    [
        "Meeting ID: 391 442 875 113\nPasscode: aB3cD4",
        "back at 4pm, kids home 3.15",
        "Flat 2B, 3rd floor",
        "S40 IAA",  # letter I for digit 1 in the inward code
        "QE4 3LT",  # Q never starts a postcode
        "DE4 3CT",  # C never used inward
    ],
)
def test_no_postcode_in_text_that_only_looks_like_one(text: str) -> None:
    assert fields(description=text).postcodes == ()


@pytest.mark.parametrize(
    "label",
    ["Postcode: ", "Postcode - ", "Post code: ", "Postcode ", "Pcode: ", "P/code: ", "Postocde: "],
)
@pytest.mark.parametrize("value", ["DE4", "DE4 3CT", "QE4 3LT", "S40 IAA", "DE75 7", "3LT"])
def test_invalid_postcode_under_any_postcode_label(label: str, value: str) -> None:
    f = fields(description=f"Address: 2 Oak Row\n{label}{value}\nTel: 07911 123456")
    assert f.postcodes == ()
    assert f.invalid_postcode_label


@pytest.mark.parametrize("value", ["", "tbc", "n/a", "to follow", "?"])
def test_placeholder_postcode_is_missing_not_invalid(value: str) -> None:
    f = fields(description=f"Postcode: {value}")
    assert f.postcodes == () and not f.invalid_postcode_label


def test_structured_postcode_counts_and_invalid_one_is_flagged() -> None:
    assert fields(location="Derby", postal_code="de23 6qw").postcodes == ("DE23 6QW",)
    f = fields(location="Derby", postal_code="DE23 6Q")
    assert f.postcodes == () and f.invalid_postcode_label


def test_valid_postcode_helper() -> None:
    assert valid_postcode(" de4 3lt ") == "DE4 3LT"
    assert valid_postcode("BFPO 801") == "BFPO 801"
    assert valid_postcode("DE4 3LT x") == ""
    assert valid_postcode("EC1A 1BB") == "EC1A 1BB"


# --- phones ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "e164"),
    [
        ("07911123456", "+447911123456"),
        ("+44 (0)1332 123456", "+441332123456"),
        ("01332-123456", "+441332123456"),
        ("0 7911 123 456", "+447911123456"),
        ("ring her on 07981 765432 when outside", "+447981765432"),
        ("IOM mobile: +44 7624 312345", "+447624312345"),
        ("Jersey 01534 712345", "+441534712345"),
        ("(01332) 641234", "+441332641234"),
        ("0044 7911 123456", "+447911123456"),
    ],
)
def test_phone_found_in_odd_formats(text: str, e164: str) -> None:
    assert fields(description=text).phones == (e164,)


@pytest.mark.parametrize(
    "label",
    ["Tel: ", "Tel - ", "Tel ", "Mob. ", "Mob: ", "Mobile: ", "Phone no: ", "Phone: ",
     "Contact: ", "Contact number: ", "Telephone: ", "Moble: ", "Tel no. ", "<b>Phone:</b> "],
)  # fmt: skip
@pytest.mark.parametrize("number", ["07700 900123", "07700900123", "07911 12345", "ext 4412"])
def test_invalid_number_under_any_contact_label(label: str, number: str) -> None:
    f = fields(description=f"Postcode: DE4 3LT\n{label}{number}")
    assert f.phones == ()
    assert f.invalid_contact_label


def test_label_after_other_text_on_the_same_line() -> None:
    f = fields(description="Perry - S40 1LP - Tel: 07755 7878. Moved to 2pm. Return: home")
    assert f.invalid_contact_label and f.going_home


def test_unlabelled_invalid_number_is_not_an_invalid_label() -> None:
    f = fields(description="07700900123 is the number on file")
    assert f.phones == () and not f.invalid_contact_label


@pytest.mark.parametrize("text", ["Contact mum via school", "Tel:", "Tel: n/a", "Contact: after 3"])
def test_contact_label_without_a_number(text: str) -> None:
    f = fields(description=text)
    assert f.phones == () and not f.invalid_contact_label


def test_mobile_typed_without_its_zero_under_a_label_is_valid() -> None:
    # phonenumbers.parse("7942 010203", "GB") is valid, though the matcher skips it.
    assert fields(description="Mobile: 7942 010203").phones == ("+447942010203",)


def test_teams_boilerplate_digits_are_not_numbers() -> None:
    f = fields(description="Microsoft Teams meeting\nMeeting ID: 391 442 875 113\nMosaic 4412873")
    assert f.phones == () and not f.invalid_contact_label


def test_fast_uk_validity_equals_phonenumbers() -> None:
    rng = random.Random(20250303)
    heads = ["1", "11", "113", "1332", "1624", "1481", "1534", "16977", "2", "20", "3", "5",
             "55", "56", "7", "70", "71", "74", "7624", "7700", "7781", "7839", "79", "8", "80",
             "84", "87", "9"]  # fmt: skip
    checked = 0
    for head in heads:
        for length in (7, 8, 9, 10, 11):
            for _ in range(40):
                if length <= len(head):
                    continue
                nsn = head + "".join(rng.choice("0123456789") for _ in range(length - len(head)))
                lib = phonenumbers.is_valid_number(
                    phonenumbers.PhoneNumber(country_code=44, national_number=int(nsn))
                )
                assert valid_uk_nsn(nsn) == lib, nsn
                checked += 1
    assert checked > 4000


def _matcher(text: str) -> set[str]:
    fmt = phonenumbers.PhoneNumberFormat.E164
    return {
        phonenumbers.format_number(m.number, fmt)
        for m in phonenumbers.PhoneNumberMatcher(text, "GB")
    }


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(["0", "07", "01332", "44", "+44", "(0)", "0044", "07700 900", "+"]),
            st.text(alphabet="0123456789", min_size=1, max_size=6),
            st.sampled_from([" ", "-", " ", "."]),
        ),
        min_size=2,
        max_size=8,
    )
)
def test_a_number_the_matcher_finds_is_never_reported_missing(parts: list[str]) -> None:
    # The rules need: when PhoneNumberMatcher(text, "GB") finds a valid number, extract finds
    # at least one valid number too (so no false missing- or invalid-contact), and every
    # number extract reports is valid.
    text = "Tel " + "".join(parts) + " ok"
    found = fields(description=text)
    if _matcher(text):
        assert found.phones
    for e164 in found.phones:
        assert phonenumbers.is_valid_number(phonenumbers.parse(e164))


@pytest.mark.parametrize(
    "text",
    [
        "Tel 07700 900123 / 07911 123456",
        "call 07700 900123 / 01332 123456 thanks",
        "Tel: 01332 123 456 (07911) 123456",
        "Tel 0007700 900(0)07700 900 0707 ok",
    ],
)
def test_a_valid_number_after_a_long_run_is_found(text: str) -> None:
    assert fields(description=text).phones


# --- going home / office return ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "going straight home",
        "Home after.",
        "will go home from here",
        "Straight home after this one",
        "Return: home",
        "Return - straight home",
        "Heading home afterwards",
        "then WFH rest of day",
        "Mum will be home from 1, going straight home from there",
        "Grant's home visit review, then home",
        "going home straight after",
    ],
)
def test_worker_going_home(text: str) -> None:
    assert fields(description=text).going_home


@pytest.mark.parametrize(
    "text",
    [
        "kids home from school 3.15",
        "mum home after 2",
        "mum home by 4",
        "Home visit",
        "care home visit first",
        "Visit to Oakfield House (children's home)",
        "Dad works from home",
        "Home address for records: 2 Fern Close",
        "NOT going straight home today - another meeting after",
        "Baby home from hospital Tuesday",
        "Home tel 01629 822822",
        "Dad home from work 5.30",
    ],
)
def test_home_that_is_not_the_worker_going_home(text: str) -> None:
    assert not fields(description=text).going_home


@pytest.mark.parametrize(
    "text",
    [
        "back to office 16:30",
        "return to office by 5pm",
        "back at base 4pm",
        "returning to County Hall about 3.30",
        "Return: office 4.30pm",
        "RETURN: OFFICE 15.15",
        "Return: office @ 3",
        "Return: office by 12",
        "Back to office 1630",
        "back at base by half 4",
        "in the office after, about 3",
        "Back 12.45 for duty",
        "Return: Office 4:30 p.m.",
    ],
)
def test_office_return_with_a_time(text: str) -> None:
    f = fields(description=text)
    assert f.office_return and not f.going_home


@pytest.mark.parametrize(
    "text",
    [
        "Return: office",
        "Return: office (time tbc)",
        "Will come back to office later",
        "Return: Office later",
        "mum back by 4",
        "parking round the back. Tel 07712 252525",
    ],
)
def test_office_return_without_a_time_does_not_count(text: str) -> None:
    assert not fields(description=text).office_return


# --- who and purpose --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("summary", "description", "has_who"),
    [
        ("HV", "", False),
        ("Home visit -", "", False),
        ("Visit:", "", False),
        ("HV.", "", False),
        ("HV 2pm", "", False),
        ("HV - tbc", "", False),
        ("HV DE4 3LT", "", False),
        ("HV Smith family", "", True),
        ("Visit - Mosaic 4412873", "", True),
        ("home visit Patel", "", True),
        ("Smith", "", True),
        ("HV", "Visiting: Ellis family", True),
        ("Visit", "Who - Summers family", True),
        ("HV", "Who: tbc", False),
        ("HV", "Home visit - Gordon's older brother lives here too", False),
    ],
)
def test_who(summary: str, description: str, has_who: bool) -> None:
    assert bool(fields(summary=summary, description=description).who) is has_who


def test_extra_prefixes_are_markers_not_names() -> None:
    occ = Occurrence(uid="u", start=START, end=None, summary="SV -")
    assert extract(occ).who == "SV"
    assert extract(occ, prefixes=(*ex.DEFAULT_PREFIXES, "SV")).who == ""


@pytest.mark.parametrize(
    ("text", "found"),
    [("Purpose: parenting assessment", True), ("CIN visit", True), ("Statutory visit.", True),
     ("s47 enquiry", True), ("see notes", False), ("Purpose: tbc", False)],
)  # fmt: skip
def test_purpose(text: str, found: bool) -> None:
    assert bool(fields(summary="HV Smith", description=text).purpose) is found


def test_html_leftovers_are_read_as_text() -> None:
    f = fields(description="<p>Tel:&nbsp;07960 111222</p><p>Return:&nbsp;office 12:00</p>")
    assert f.phones == ("+447960111222",) and f.office_return
    f = fields(description="&lt;Tel&gt; 07700 900123 &lt;Return&gt; office 1pm")
    assert f.invalid_contact_label and f.office_return


def test_repr_holds_no_personal_data() -> None:
    f = fields(summary="HV Nowak", description="16 Bramble Way DE11 9DL 07981 765432 CIN")
    text = repr(f)
    for secret in ("Nowak", "DE11", "7981", "CIN"):
        assert secret not in text
