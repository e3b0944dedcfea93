"""Helpers more than one backend needs: the deletion diff, Outlook's HTML bodies as text,
and URL validation for the options models.

Pure: no I/O. Kept out of :mod:`syncd.sources.base` so the interface module stays the
interface.
"""

from __future__ import annotations

import html.parser
import re
from collections.abc import Container, Iterable
from urllib.parse import urlsplit

__all__ = ["check_url", "deleted", "html_to_text"]


def deleted(known: Iterable[str], present: Container[str]) -> list[str]:
    """The hrefs the store holds that a whole listing of the calendar no longer has
    (``known - present``), sorted so a ChangeSet is the same whatever the dict order."""
    return sorted(href for href in known if href not in present)


# --- HTML body -> text ---------------------------------------------------------------------

_BLOCK = frozenset({
    "p", "div", "br", "li", "tr", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
    "blockquote", "pre", "hr", "address", "section", "article", "header", "footer", "dl",
    "dt", "dd",
})  # fmt: skip
_CELLS = frozenset({"td", "th"})
_HIDDEN = frozenset({"style", "script", "head", "title", "template"})


class _TextExtractor(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def _at_line_start(self) -> bool:
        return not self.parts or self.parts[-1].endswith("\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag == "br" or (tag in _BLOCK and not self._at_line_start()):
            self.parts.append("\n")
        elif tag in _CELLS and not self._at_line_start():
            # "<td>Tel:</td><td>01332 123456</td>": cells side by side stay apart.
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCK and tag != "br" and not self._at_line_start():
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        # Source line breaks inside HTML are layout, not content. A non-breaking space is
        # kept until the end: a paragraph holding only &nbsp; is Outlook's blank line.
        text = re.sub(r"[ \t\r\n\f]+", " ", data)
        if text == " " and self._at_line_start():
            return
        self.parts.append(text)


def html_to_text(body: str) -> str:
    """An HTML body (as Outlook, OWA or Word write it) as plain text: one line per
    paragraph, list item, table row or ``<br>``; head, style and script dropped; entities
    decoded; at most one blank line in a row."""
    parser = _TextExtractor()
    parser.feed(body)
    parser.close()
    text = "".join(parser.parts).replace("\xa0", " ")
    out: list[str] = []
    for line in (re.sub(r" {2,}", " ", raw).strip() for raw in text.split("\n")):
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def check_url(value: str, *, key: str = "url", schemes: tuple[str, ...] = ("https", "http")) -> str:
    """Options-model validation for a server URL: a scheme and a host are required."""
    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in schemes or not parts.hostname:
        want = " or ".join(f"{s}://" for s in schemes)
        raise ValueError(f"{key} must be a full URL starting with {want}")
    return value.strip()
