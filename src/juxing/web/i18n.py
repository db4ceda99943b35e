"""English and Simplified Chinese (简体中文) for the web UI: a small gettext-style catalog.

Messages are written in English in the templates (``{{ _("Sign in") }}``); the catalog
``i18n/zh-CN.json`` maps each English message to its Chinese text. A missing translation
falls back to English, and ``missing_messages()`` lists them for the tests.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from fastapi import Request

LOCALES = ("en", "zh-CN")
DEFAULT_LOCALE = "en"
LOCALE_COOKIE = "juxing_lang"
LOCALE_NAMES = {"en": "English", "zh-CN": "简体中文"}
CATALOG_DIR = Path(__file__).resolve().parent / "i18n"

Translate = Callable[..., str]


class HasLocale(Protocol):
    @property
    def locale(self) -> str: ...


@functools.cache
def catalog(locale: str) -> dict[str, str]:
    """The message catalog of ``locale`` (English has none: messages are English)."""
    path = CATALOG_DIR / f"{locale}.json"
    if locale == DEFAULT_LOCALE or not path.is_file():
        return {}
    data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return data


def translator(locale: str) -> Translate:
    """A ``_(message, **values)`` function for ``locale``; values fill ``{name}`` fields."""
    messages = catalog(locale)

    def _(message: str, **values: Any) -> str:
        text = messages.get(message) or message
        return text.format(**values) if values else text

    return _


def normalize(tag: str | None) -> str | None:
    """Map a language tag (``zh``, ``zh-Hans-CN``, ``en-GB``...) to a supported locale."""
    if not tag:
        return None
    tag = tag.strip().lower().replace("_", "-")
    if tag.startswith("zh"):
        return "zh-CN"
    if tag.startswith("en"):
        return "en"
    return None


def _from_accept_language(header: str) -> str | None:
    weighted: list[tuple[float, str]] = []
    for part in header.split(","):
        lang, _, params = part.strip().partition(";")
        quality = 1.0
        match = re.search(r"q=([0-9.]+)", params)
        if match:
            try:
                quality = float(match.group(1))
            except ValueError:
                quality = 0.0
        if lang:
            weighted.append((quality, lang))
    for _quality, lang in sorted(weighted, key=lambda w: -w[0]):
        locale = normalize(lang)
        if locale:
            return locale
    return None


def choose_locale(request: Request, user: HasLocale | None) -> str:
    """The signed-in user's locale, else the language cookie, else Accept-Language."""
    if user is not None and normalize(user.locale):
        return normalize(user.locale) or DEFAULT_LOCALE
    from_cookie = normalize(request.cookies.get(LOCALE_COOKIE))
    if from_cookie:
        return from_cookie
    return _from_accept_language(request.headers.get("accept-language", "")) or DEFAULT_LOCALE


def N_(message: str) -> str:
    """Mark a message for translation where it is defined; it is translated when shown."""
    return message


def template_messages(web_dir: Path) -> set[str]:
    """Every literal message in ``_()`` (templates) or ``N_()`` (page modules)."""
    pattern = re.compile(r"""(?<![A-Za-z0-9])N?_\(\s*(["'])(.+?)\1""")
    found: set[str] = set()
    for path in [*web_dir.rglob("*.html"), *web_dir.glob("*.py")]:
        for match in pattern.finditer(path.read_text(encoding="utf-8")):
            found.add(match.group(2))
    return found


def missing_messages(web_dir: Path, locale: str = "zh-CN") -> set[str]:
    """Messages of the web UI that ``locale``'s catalog does not translate."""
    return template_messages(web_dir) - set(catalog(locale))
