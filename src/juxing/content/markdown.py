"""Markdown to safe HTML: markdown-it-py renders (raw HTML off), nh3 sanitizes.

Two layers: raw HTML in the Markdown is escaped, never passed through, and the rendered HTML
is cleaned against an allow-list (no script/style/iframe, no event-handler attributes, links
and images only with http(s)/mailto URLs, links get ``rel="nofollow noopener ugc"``).
"""

from __future__ import annotations

import html

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code",
    "pre", "blockquote", "ul", "ol", "li", "a", "img", "table", "thead", "tbody", "tr", "th",
    "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "th": {"align"},
    "td": {"align"},
}
URL_SCHEMES = {"http", "https", "mailto"}

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    ["table", "strikethrough"]
)


def render_markdown(source: str) -> str:
    """Render Markdown to sanitized HTML."""
    html = _md.render(source or "")
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="nofollow noopener ugc",
        strip_comments=True,
    )


def plain_text(source: str) -> str:
    """The text of a Markdown document without markup (for search and snippets)."""
    return html.unescape(nh3.clean(_md.render(source or ""), tags=set())).replace("\n", " ").strip()
