"""Reloading the page: finished conversations come back whole, a streaming reply carries on."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from chat.nobox.simulator import find_model, reply_text
from tests.browser.conftest import QUICK, SIM_REPLY_TOKENS, STREAM, ChatPage

pytestmark = pytest.mark.browser

# Visible text of a reply that is still streaming ends with its unfinished last word, which
# can render differently once the next piece arrives (`*emphasis` becomes *emphasis*): only
# text before this many trailing characters is compared as a prefix.
UNSETTLED_TAIL = 24

LAST_REPLY_TEXT = """() => {
  const bodies = document.querySelectorAll(
    '#messages .message[data-role="assistant"] .message-body');
  return bodies.length ? bodies[bodies.length - 1].innerText : "";
}"""

# An init script: from the first moment of every page load, every distinct visible text the
# streaming reply shows is kept in window.__samples.
SAMPLE_STREAMING_TEXT = """(() => {
  window.__samples = [];
  const record = () => {
    const body = document.querySelector(
      '#messages .message[data-role="assistant"][data-status="streaming"] .message-body');
    if (!body) return;
    const text = body.innerText;
    if (window.__samples[window.__samples.length - 1] !== text) window.__samples.push(text);
  };
  new MutationObserver(record).observe(document, {
    childList: true, subtree: true, characterData: true, attributes: true });
})()"""


def settled(text: str) -> str:
    return text[:-UNSETTLED_TAIL] if len(text) > UNSETTLED_TAIL else ""


def test_a_finished_conversation_comes_back_after_a_reload(chat: ChatPage) -> None:
    page = chat.page
    chat.send("Hello there, history", model="openai/gpt-4o")
    reply = chat.last_reply()
    chat.wait_status(reply, "complete")
    expect(page).to_have_url(re.compile(r"/c/[\w-]+/$"), timeout=QUICK)
    match = re.search(r"/c/([\w-]+)/$", page.url)
    assert match
    conversation = match.group(1)
    asked = chat.text_of(chat.by_role("user"))
    answered = chat.text_of(reply)
    assert asked == "Hello there, history"
    assert "You said: “Hello there, history”" in answered

    link = page.locator(f'.conversation-list a[href="/c/{conversation}/"]')
    expect(link).to_be_visible()

    def check_history() -> None:
        expect(chat.messages).to_have_count(2, timeout=QUICK)
        expect(chat.messages.nth(0)).to_have_attribute("data-role", "user")
        expect(chat.messages.nth(1)).to_have_attribute("data-role", "assistant")
        expect(chat.messages.nth(0)).to_have_attribute("data-status", "complete")
        expect(chat.messages.nth(1)).to_have_attribute("data-status", "complete")
        assert chat.text_of(chat.messages.nth(0)) == asked
        assert chat.text_of(chat.messages.nth(1)) == answered

    chat.reload()
    expect(page).to_have_url(re.compile(rf"/c/{conversation}/$"))
    check_history()
    expect(link).to_be_visible()
    expect(link).to_contain_text("Hello there")
    expect(link).to_have_class(re.compile(r"\bcurrent\b"))

    # From a new chat, the sidebar leads back to it.
    chat.open("/")
    expect(chat.messages).to_have_count(0)
    link.click()
    expect(page).to_have_url(re.compile(rf"/c/{conversation}/$"), timeout=QUICK)
    chat.wait_connected()
    check_history()


def test_a_reload_mid_reply_loses_nothing_and_doubles_nothing(chat: ChatPage) -> None:
    page = chat.page
    prompt = "Reload me halfway"
    expected = reply_text(
        find_model("sim/long"), [{"role": "user", "content": prompt}], SIM_REPLY_TOKENS
    )
    chat.send(prompt, model="sim/long")
    reply = chat.last_reply()
    shown = chat.wait_text_longer_than(reply, 200, timeout=QUICK)
    expect(reply).to_have_attribute("data-status", "streaming")

    page.add_init_script(script=SAMPLE_STREAMING_TEXT)
    chat.reload()
    reply = chat.last_reply()
    expect(reply).to_have_attribute("data-status", "streaming", timeout=QUICK)
    # What was shown before the reload is all there, and the reply keeps growing.
    page.wait_for_function(
        f"([prefix, n]) => {{ const t = ({LAST_REPLY_TEXT})(); "
        "return t.startsWith(prefix) && t.length > n; }",
        arg=[settled(shown), len(shown) + 100],
        timeout=QUICK,
    )

    chat.wait_status(reply, "complete", timeout=STREAM)
    final = chat.text_of(reply)
    assert final.startswith(settled(shown))
    samples: list[str] = page.evaluate("window.__samples")
    assert len(samples) >= 5, f"the reply did not stream after the reload: {samples}"
    for sample in samples:
        # every state shown while streaming is the start of the final text: no gap, no repeat
        assert final.startswith(settled(sample)), f"shown while streaming: {sample!r}"

    # The text the server stored: exactly the simulator's (deterministic) reply, shown the same.
    chat.reload()
    stored = chat.last_reply()
    expect(stored).to_have_attribute("data-status", "complete", timeout=QUICK)
    assert chat.text_of(stored) == final
    assert chat.page_data()["messages"][-1]["content"] == expected
