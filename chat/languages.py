"""The person's language: pages get it from Django's LocaleMiddleware (Accept-Language, or the
language cookie), sockets from the same headers of their handshake, and the page's JavaScript
gets its catalogue (static/chat/i18n.js) from the djangojs domain."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import polib
from django.conf import settings
from django.http import HttpRequest
from django.utils import translation
from django.utils.functional import lazy
from django_stubs_ext import StrOrPromise

JS_DOMAIN = "djangojs"


def language_of_scope(scope: dict[str, Any]) -> str:
    """The language a socket speaks, chosen from its handshake exactly as LocaleMiddleware
    chooses a page's: the language cookie, then Accept-Language, then LANGUAGE_CODE. Called once
    per socket; frames are then built under translation.override(language)."""
    request = HttpRequest()
    request.COOKIES = dict(scope.get("cookies") or {})
    for name, value in scope.get("headers") or ():
        if name == b"accept-language":
            request.META["HTTP_ACCEPT_LANGUAGE"] = value.decode("latin-1")
    return translation.get_language_from_request(request)


@cache
def js_catalogue(language: str) -> dict[str, str]:
    """msgid -> translation for the page's modules, from the compiled djangojs catalogue of
    `language` ({} for English, the language the modules are written in, or without one)."""
    for locale_dir in settings.LOCALE_PATHS:
        mo = Path(locale_dir) / translation.to_locale(language) / "LC_MESSAGES" / f"{JS_DOMAIN}.mo"
        if mo.exists():
            return {entry.msgid: entry.msgstr for entry in polib.mofile(str(mo)) if entry.msgstr}
    return {}


def page_language(request: HttpRequest) -> dict[str, Any]:
    """Context processor: the JavaScript catalogue of the page's language (base.html hands it
    to the modules as #i18n-catalogue)."""
    return {"js_catalogue": js_catalogue(translation.get_language())}


def translated_later(message: StrOrPromise, **values: object) -> StrOrPromise:
    """`message % values`, translated when it is turned into text rather than now.

    A refusal may be made in a task that is not the refused person's (the intake stores several
    people's sends in one group): its text is written where it is sent, in that socket's
    language."""
    text: StrOrPromise = lazy(lambda: str(message) % values, str)()
    return text
