// Settings: import an exported conversation. The file is sent as the request body (Django's form
// parsing takes no files here), with the page's CSRF token; success opens the new conversation.
import { t } from "./i18n.js";

const form = document.querySelector("#import-form");
const status = document.querySelector("#import-status");

form?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = form.querySelector("#import-file").files[0];
  if (!file) return;
  status.textContent = t("Importing…");
  try {
    const response = await fetch(form.dataset.url, {
      method: "POST",
      body: file,
      headers: {
        "Content-Type": "application/json",
        "X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value,
      },
      credentials: "same-origin",
    });
    const answer = await response.json().catch(() => ({}));
    if (response.ok && answer.url) {
      window.location.assign(answer.url);
      return;
    }
    status.textContent = answer.error?.message
      || t("The import failed ({status}).", { status: response.status });
  } catch {
    status.textContent = t("The import failed: the server could not be reached.");
  }
});
