"""A long conversation opens on its latest messages; scrolling up brings the older ones."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ChatPage, User, sign_in
from tests.servers import manage

pytestmark = pytest.mark.browser

MAKE_LONG_CHAT = """
from chat.models import Conversation, Message, User
owner = User.objects.get(username={username!r})
chat = Conversation.objects.create(owner=owner, title="long", next_seq=301)
roles = ["assistant", "user"]
Message.objects.bulk_create(
    Message(conversation=chat, seq=s, role=roles[s % 2], content=f"message {{s}}")
    for s in range(1, 301)
)
print(chat.public_id)
"""


def test_scrolling_up_loads_older_messages_in_place(
    page: Page, app_url: str, user: User, env: dict[str, str]
) -> None:
    made = manage(env, "shell", "-c", MAKE_LONG_CHAT.format(username=user.username))
    chat_id = made.strip().splitlines()[-1]
    sign_in(page, app_url, user)
    chat = ChatPage(page)
    chat.open(f"/c/{chat_id}/")
    messages = page.locator("#messages .message")
    expect(messages).to_have_count(40)
    expect(page.locator("#messages")).to_contain_text("message 300")

    # Reading upwards: each time the top is near, the previous page arrives above.
    for shown in (140, 240, 300):
        page.locator("#messages").evaluate("el => { el.scrollTop = 0; }")
        expect(messages).to_have_count(shown)
        # The reader stays where they were: the message that was on top is still in view.
        top = page.evaluate("() => document.querySelector('#messages').scrollTop")
        assert top > 0, "the older page pushed the view to the top"
    expect(messages.first).to_contain_text("message 1")
    seqs = page.evaluate(
        "() => [...document.querySelectorAll('#messages .message')].map((m) => m.textContent)"
    )
    assert json.dumps(seqs).count("message ") == 300
