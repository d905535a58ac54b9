"""Languages (issue 12): the browser's Accept-Language picks the interface's language, for pages
and for the chat socket's messages; error codes stay the protocol's whatever the language; every
text the page's modules show has its German; the catalogues compile without GNU gettext."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import polib
import pytest
from django.test import Client

from chat import translations
from chat.languages import js_catalogue, language_of_scope
from chat.models import Message
from tests.protocol import send_frame
from tests.servers import ROOT
from tests.ws import connect, frames_until, send_raw

GERMAN = [(b"accept-language", b"de-DE,de;q=0.9,en;q=0.8")]
ENGLISH = [(b"accept-language", b"en-US,en;q=0.9")]
LOCALE = ROOT / "locale"
MODULES = sorted((ROOT / "static" / "chat").glob("*.js"))
# A call of t: not preceded by a name character or a dot (split(, .at(, Set(, ...), nor its
# definition in i18n.js.
T_CALL = re.compile(r"(?<![\w.$])(?<!function )t\(")
T_LITERAL = re.compile(r'(?<![\w.$])t\("((?:[^"\\]|\\.)*)"')
PLACEHOLDER = re.compile(r"\{(\w+)\}")


# --- choosing the language --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "language"),
    [
        ({"headers": GERMAN}, "de"),
        ({"headers": [(b"accept-language", b"de-AT")]}, "de"),
        ({"headers": ENGLISH}, "en"),
        ({"headers": [(b"accept-language", b"fr-FR,fr;q=0.9")]}, "en"),  # not offered
        ({"headers": []}, "en"),
        # The language cookie wins over the header, as it does for pages.
        ({"headers": ENGLISH, "cookies": {"django_language": "de"}}, "de"),
    ],
)
def test_a_socket_speaks_the_language_its_handshake_asks_for(
    scope: dict[str, Any], language: str
) -> None:
    assert language_of_scope(scope) == language


@pytest.mark.django_db
def test_the_sign_in_page_is_german_for_a_german_browser() -> None:
    page = Client(HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9").get("/accounts/login/")
    html = page.content.decode()
    assert '<html lang="de">' in html
    assert "Benutzername" in html and "Konten legt der Admin deines Teams an." in html
    assert page["Content-Language"] == "de"


@pytest.mark.django_db
def test_the_sign_in_page_stays_english_for_an_english_browser() -> None:
    html = Client(HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").get("/accounts/login/").content.decode()
    assert '<html lang="en">' in html
    assert "Username" in html and "Benutzername" not in html


@pytest.mark.django_db
def test_the_chat_page_hands_its_modules_the_german_catalogue(alice: Any) -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE="de")
    client.force_login(alice)
    html = client.get("/").content.decode()
    found = re.search(
        r'<script id="i18n-catalogue" type="application/json">(.*?)</script>', html, re.S
    )
    assert found is not None
    catalogue = json.loads(found.group(1))
    assert catalogue["Connected"] == "Verbunden"
    assert catalogue == js_catalogue("de")
    assert ">Senden<" in html


@pytest.mark.django_db
def test_an_english_page_carries_no_catalogue(alice: Any) -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(alice)
    assert 'id="i18n-catalogue"' not in client.get("/").content.decode()


@pytest.mark.django_db
def test_a_token_problem_on_the_model_list_is_german(alice: Any) -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE="de")
    client.force_login(alice)
    error = client.get("/api/models").json()["error"]
    assert error["code"] == "no_token"
    assert error["message"].startswith("Speichere dein Nobox-Token")


# --- the socket's messages ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_german_socket_gets_german_messages_with_the_same_codes(alice: Any) -> None:
    german, english = await connect(alice, GERMAN), await connect(alice, ENGLISH)
    for socket in (german, english):
        await send_raw(socket, {"type": "dance"})
    de, en = (await german.receive_json_from(5), await english.receive_json_from(5))
    assert de["code"] == en["code"] == "unknown_type"
    assert de["message"] == "Unbekannter Frame-Typ."
    assert en["message"] == "Unknown frame type."
    # A message with a value in it, made while checking the frame.
    await send_raw(german, send_frame("hi", client_id="c1", temperature=7))
    refused = await german.receive_json_from(5)
    assert refused["code"] == "invalid"
    assert refused["message"] == "temperature muss eine Zahl von 0 bis 2 sein."
    await german.disconnect()
    await english.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_refusal_made_by_the_shared_intake_is_in_the_senders_language(
    charlie: Any,
) -> None:
    # Sends are stored in groups by one task for every socket of the process (chat.replies.
    # intake): the refusal is written in the language of the socket it goes to.
    socket = await connect(charlie, GERMAN)
    await send_raw(socket, send_frame("hi", client_id="c2"))
    refused = await socket.receive_json_from(5)
    assert refused["code"] == "no_token"
    assert refused["message"] == (
        "Speichere dein Nobox-Token in den Einstellungen, bevor du chattest."
    )
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_failed_reply_is_explained_in_the_senders_language(
    alice: Any, alice_token: str, nobox: str, settings: Any
) -> None:
    settings.NOBOX_RETRY_ATTEMPTS = 1
    socket = await connect(alice, GERMAN)
    await send_raw(socket, send_frame("hi", model="no/such-model"))
    frames = await frames_until(socket, "done")
    await socket.disconnect()
    reply = frames[-1]["message"]
    assert reply["error"]["code"] == "model_not_found"
    assert reply["error"]["message"].startswith("Nobox kennt dieses Modell nicht")
    stored = await Message.objects.aget(public_id=reply["id"])
    assert stored.error_message == reply["error"]["message"]


# --- the catalogues -----------------------------------------------------------------------------


def _german(domain: str) -> polib.POFile:
    return polib.pofile(str(LOCALE / "de" / "LC_MESSAGES" / f"{domain}.po"))


def _code(module: Path) -> str:
    """The module without its comment lines (they quote t() as examples)."""
    lines = module.read_text().splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith(("//", "/*", "*")))


def test_every_text_of_the_page_modules_has_its_german() -> None:
    catalogue = {entry.msgid: entry for entry in _german("djangojs")}
    missing, broken = [], []
    for module in MODULES:
        for literal in T_LITERAL.findall(_code(module)):
            text = json.loads(f'"{literal}"')
            entry = catalogue.get(text)
            if entry is None or not entry.translated():
                missing.append(f"{module.name}: {text}")
            elif set(PLACEHOLDER.findall(entry.msgstr)) != set(PLACEHOLDER.findall(text)):
                broken.append(f"{module.name}: {text} -> {entry.msgstr}")
    assert not missing, "no German (run makemessages -d djangojs, README):\n" + "\n".join(missing)
    assert not broken, "placeholders differ:\n" + "\n".join(broken)


def test_the_page_modules_translate_only_literal_texts() -> None:
    # t(someVariable) would escape extraction and the check above: its text never gets German.
    calls = [
        f"{module.name}: {source[match.start() : match.start() + 40]}"
        for module in MODULES
        for source in [_code(module)]
        for match in T_CALL.finditer(source)
        if source[match.end()] != '"'
    ]
    assert not calls


def test_every_server_text_has_its_german() -> None:
    untranslated = [entry.msgid for entry in _german("django") if not entry.translated()]
    assert not untranslated


def test_catalogues_compile_without_gnu_gettext_and_again_when_changed(tmp_path: Path) -> None:
    messages = tmp_path / "de" / "LC_MESSAGES"
    messages.mkdir(parents=True)
    po = messages / "django.po"
    po.write_text(
        'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        'msgid "Send"\nmsgstr "Senden"\n\n#, fuzzy\nmsgid "Stop"\nmsgstr "Halt"\n'
    )
    assert translations.compile_stale(tmp_path) == [po.with_suffix(".mo")]
    compiled = {entry.msgid: entry.msgstr for entry in polib.mofile(str(po.with_suffix(".mo")))}
    assert compiled.get("Send") == "Senden"
    assert "Stop" not in compiled  # a fuzzy guess is not shipped
    assert translations.stale_catalogues(tmp_path) == []
    mo_time = po.with_suffix(".mo").stat().st_mtime
    os.utime(po, (mo_time + 10, mo_time + 10))
    assert translations.stale_catalogues(tmp_path) == [po]
