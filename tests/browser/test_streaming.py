"""A reply as it streams: markdown rendered and highlighted on the fly, Enter to send, Stop."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from chat.nobox.simulator import find_model, reply_text
from tests.browser.conftest import QUICK, SIM_REPLY_TOKENS, ChatPage

pytestmark = pytest.mark.browser

# Records, from inside the page, what the assistant's message looked like while it was still
# `data-status="streaming"`: polling from the test could miss a state that lasts half a second.
WATCH_STREAMING = """() => {
  const seen = { renders: 0, h2: false, li: false, preCode: false, highlighted: false,
                 keywords: false, copyButtons: 0, stopShown: false };
  window.__whileStreaming = seen;
  const root = document.querySelector("#messages");
  new MutationObserver(() => {
    const message = root.querySelector('.message[data-role="assistant"][data-status="streaming"]');
    const body = message && message.querySelector(".message-body");
    if (!body || !body.textContent) return;
    seen.renders += 1;
    seen.stopShown ||= !document.querySelector("#stop").hidden;
    seen.h2 ||= Boolean(body.querySelector("h2"));
    seen.li ||= Boolean(body.querySelector("li"));
    seen.preCode ||= Boolean(body.querySelector("pre code"));
    seen.highlighted ||= Boolean(body.querySelector("pre code.hljs"));
    seen.keywords ||= Boolean(body.querySelector("pre code .hljs-keyword"));
    seen.copyButtons = Math.max(seen.copyButtons,
                                body.querySelectorAll(".code-block button.copy-code").length);
  }).observe(root, { childList: true, subtree: true, characterData: true, attributes: true });
}"""


def test_markdown_renders_while_the_reply_streams(chat: ChatPage) -> None:
    page = chat.page
    chat.choose_model("sim/markdown")

    # Shift+Enter is a new line in the draft, not a send.
    chat.composer.click()
    chat.composer.press_sequentially("Show me")
    chat.composer.press("Shift+Enter")
    chat.composer.press_sequentially("everything")
    expect(chat.composer).to_have_value("Show me\neverything")
    expect(chat.messages).to_have_count(0)

    page.evaluate(WATCH_STREAMING)
    chat.composer.press("Enter")
    expect(chat.composer).to_have_value("", timeout=QUICK)

    user = chat.by_role("user")
    expect(user).to_have_count(1, timeout=QUICK)
    expect(chat.body(user)).to_have_text("Show me\neverything")
    reply = chat.last_reply()
    chat.wait_status(reply, "complete")
    seen = page.evaluate("window.__whileStreaming")
    assert seen["renders"] > 5, f"the reply did not stream: {seen}"
    assert seen["stopShown"], f"no Stop button while streaming: {seen}"
    assert seen["h2"] and seen["li"], f"markdown was not rendered while streaming: {seen}"
    assert seen["preCode"], f"no code block while streaming: {seen}"
    assert seen["highlighted"] and seen["keywords"], f"code not highlighted while streaming: {seen}"
    assert seen["copyButtons"] >= 1, f"no copy button on a code block while streaming: {seen}"

    # The finished message: every block of the sampler, both code blocks highlighted.
    body = chat.body(reply)
    expect(body.locator("h2")).to_have_text("Markdown sampler ☕")
    expect(body.locator("h3")).to_have_count(4)
    expect(body.locator("ul > li")).to_have_count(2)
    expect(body.locator("ol > li")).to_have_count(2)
    expect(body.locator("strong")).to_have_text("bold")
    expect(body.locator("table tr")).to_have_count(3)
    expect(body.locator("blockquote")).to_have_text("That is all, folks.")
    expect(body.locator("pre code.hljs")).to_have_count(2)
    expect(body.locator("pre code.language-python .hljs-keyword").first).to_have_text("def")
    expect(body.locator(".code-block button.copy-code")).to_have_count(2)
    expect(body).to_contain_text("You asked: “Show me everything”")
    expect(chat.stop_button).to_be_hidden()
    expect(page).to_have_url(re.compile(r"/c/[^/]+/$"), timeout=QUICK)


def test_stop_keeps_the_text_written_so_far(chat: ChatPage) -> None:
    page = chat.page
    prompt = "Tell me a long story"
    full = reply_text(
        find_model("sim/long"), [{"role": "user", "content": prompt}], SIM_REPLY_TOKENS
    )
    chat.send(prompt, model="sim/long")
    reply = chat.last_reply()
    chat.wait_text_longer_than(reply, 80, timeout=QUICK)
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(chat.stop_button).to_be_visible()
    chat.stop_button.click()

    chat.wait_status(reply, "stopped", timeout=QUICK)
    expect(reply.locator(".message-status")).to_have_text("stopped")
    expect(chat.stop_button).to_be_hidden()
    kept = chat.text_of(reply)
    assert len(kept) > 80
    assert len(kept) < len(full) * 0.8, "the reply ran (nearly) to its end despite Stop"
    # Nothing more arrives: at the simulator's pace a second is ~40 more pieces.
    page.wait_for_timeout(1000)
    assert chat.text_of(reply) == kept

    # The stored message is the one shown: stopped, with the same text.
    chat.reload()
    stored = chat.last_reply()
    expect(stored).to_have_attribute("data-status", "stopped", timeout=QUICK)
    assert chat.text_of(stored) == kept
    assert full.startswith(chat.page_data()["messages"][-1]["content"])
