"""The helpers every backend shares: Outlook's HTML bodies as text, and the deletion diff.

EWS and Graph once had a converter each, and they disagreed (Graph ran a paragraph into the
text before it, and lost the blank line Outlook writes as ``<p>&nbsp;</p>``). The same body
now reads the same through both backends' mapping code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from exchangelib import HTMLBody

from syncd.sources._common import deleted, html_to_text
from syncd.sources.ews import mapping as ews_map
from syncd.sources.graph import mapping as graph_map

DATA = Path(__file__).parent / "data" / "interop" / "ms365-calendar"

OUTLOOK = (
    '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
    "<style><!-- p {margin:0} --></style><title>x</title></head>\r\n<body>"
    '<div class="WordSection1"><p class="MsoNormal">Tel:&nbsp;01332 123456</p>\r\n'
    "<p>Address: 4 Mill&nbsp;Lane,<br>Matlock DE4 3LT</p><p>&nbsp;</p>"
    "<ul><li>Return: office &amp; then home</li></ul><script>alert(1)</script>"
    "</div></body></html>"
)
OUTLOOK_TEXT = (
    "Tel: 01332 123456\nAddress: 4 Mill Lane,\nMatlock DE4 3LT\n\nReturn: office & then home"
)


def both(html: str) -> tuple[str, str]:
    """The description each backend makes of the same HTML body."""
    via_ews = ews_map.body_text(HTMLBody(html))
    via_graph = graph_map.body_text({"contentType": "html", "content": html})
    return via_ews, via_graph


CASES = [
    (OUTLOOK, OUTLOOK_TEXT),
    # Text before a block is its own line (Graph's old converter ran them together).
    ("Visiting: Patel<div>Mob 07911 123456</div>", "Visiting: Patel\nMob 07911 123456"),
    # Table cells side by side stay apart; rows are lines.
    (
        "<table><tr><td>Tel:</td><td>01332&nbsp;123456</td></tr><tr><th>Return</th>"
        "<td>home</td></tr></table>",
        "Tel: 01332 123456\nReturn home",
    ),
    # Non-breaking and ordinary spaces collapse alike; source line breaks are layout.
    ("<p>Postcode:&nbsp; &nbsp;DE1\r\n 3AB</p>", "Postcode: DE1 3AB"),
    # Self-closing breaks, entities, and at most one blank line in a row.
    ("a<br/>b<br><br><br><br>c &lt;x&gt; &#163;5", "a\nb\n\nc <x> £5"),
    ("<head><title>secret</title></head><style>p{}</style>", ""),
]


@pytest.mark.parametrize(("html", "text"), CASES)
def test_html_body_reads_the_same_through_ews_and_graph(html: str, text: str) -> None:
    assert html_to_text(html) == text
    assert both(html) == (text, text)


def test_graphs_word_fixture_reads_the_same_through_ews() -> None:
    doc: dict[str, Any] = json.loads((DATA / "calendar1_calendar_view.json").read_text())
    body = doc["value"][0]["body"]
    assert body["contentType"] == "html"
    assert both(body["content"]) == ("Test", "Test")


def test_plain_bodies_are_not_parsed_as_html() -> None:
    assert ews_map.body_text("a <b> c\r\nd") == "a <b> c\nd"
    assert graph_map.body_text({"contentType": "text", "content": "a <b> c\r\nd"}) == "a <b> c\nd"


def test_deleted_is_known_minus_present_sorted() -> None:
    known = {"c": "1", "a": "2", "b": "3"}
    assert deleted(known, {"b": object()}) == ["a", "c"]
    assert deleted(known, {"a", "b", "c", "z"}) == []
    assert deleted({}, {"a"}) == []
