// The copy buttons of a message list (each code block, each whole message), the same on the chat
// page and on a shared page: the button says whether it worked, then goes back to what it was.
import { t } from "./i18n.js";
import { codeForCopyButton } from "./render.js";

const RESET_AFTER_MS = 1500;

// `list` is the page's MessageList; `announce` says the result to screen readers (optional).
export function enableCopyButtons(messagesEl, list, announce = () => {}) {
  messagesEl.addEventListener("click", (event) => {
    const copyCode = event.target.closest(".copy-code");
    if (copyCode) {
      copyText(codeForCopyButton(copyCode), copyCode, announce);
      return;
    }
    const copyMessage = event.target.closest(".copy-message");
    if (copyMessage) {
      copyText(list.textOf(copyMessage.closest(".message").dataset.id), copyMessage, announce);
    }
  });
}

async function copyText(text, button, announce) {
  const ok = await toClipboard(text);
  const label = button.textContent;
  const name = button.getAttribute("aria-label");
  const result = ok ? t("Copied") : t("Copy failed");
  button.textContent = result;
  if (name) button.setAttribute("aria-label", result); // the name screen readers hear, too
  button.disabled = true;
  announce(result);
  setTimeout(() => {
    button.textContent = label;
    if (name) button.setAttribute("aria-label", name);
    button.disabled = false;
  }, RESET_AFTER_MS);
}

async function toClipboard(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No async clipboard (plain http, or permission refused): the old selection route.
    const scratch = document.createElement("textarea");
    scratch.value = text;
    scratch.setAttribute("readonly", "");
    scratch.className = "clipboard-scratch";
    document.body.append(scratch);
    scratch.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
    scratch.remove();
    return ok;
  }
}
