// The model picker: the user's models from GET /api/models, with their prices, and
// the last choice remembered in this browser.

import { t } from "./i18n.js";

const STORAGE_KEY = "noboxweb.model";

/** "GPT-4o — $2.50 / $10.00 per 1M tokens", "… — free", "… — price unknown": the server
 * parsed the price once (chat.nobox.Price) and says it as `price`. */
export function modelLabel(model) {
  const name = model.name || model.id;
  return model.price ? `${name} — ${model.price}` : name;
}

function remembered() {
  try {
    return localStorage.getItem(STORAGE_KEY) || "";
  } catch {
    return ""; // storage disabled
  }
}

export class ModelPicker {
  /** handlers: onError({code, message}) when the list cannot be loaded. */
  constructor(select, { url, conversationModel, onError }) {
    this.select = select;
    this.url = url;
    this.conversationModel = conversationModel || "";
    this.onError = onError;
    // Until the list arrives, the conversation's (or last) model is usable so sending works.
    const initial = this.conversationModel || remembered();
    if (initial) this.setOptions([{ id: initial, label: initial }], initial);
    select.addEventListener("change", () => this.remember());
  }

  get value() {
    return this.select.value;
  }

  remember() {
    try {
      if (this.select.value) localStorage.setItem(STORAGE_KEY, this.select.value);
    } catch {
      // storage disabled: nothing to remember with
    }
  }

  async load() {
    let response;
    let body = null;
    try {
      response = await fetch(this.url, { headers: { Accept: "application/json" },
                                         credentials: "same-origin" });
      body = await response.json();
    } catch {
      this.onError({ code: "network", message: t("Could not load the model list.") });
      this.markUnavailable();
      return;
    }
    if (!response.ok || !Array.isArray(body?.models)) {
      this.onError(body?.error || { code: "upstream_error",
                                    message: t("Could not load the model list.") });
      this.markUnavailable();
      return;
    }
    this.fill(body.models);
  }

  fill(models) {
    const options = models.map((m) => ({ id: m.id, label: modelLabel(m), aliases: [m.public_id] }));
    const known = (id) => options.find((o) => o.id === id || o.aliases.includes(id));
    let chosen = "";
    for (const candidate of [this.conversationModel, this.select.value, remembered()]) {
      if (!candidate) continue;
      const match = known(candidate);
      if (match) {
        chosen = match.id;
        break;
      }
      if (candidate === this.conversationModel) {
        // The conversation's model is no longer offered: show it rather than switch silently.
        options.unshift({ id: candidate, label: t("{model} (not in your model list)", { model: candidate }),
                          aliases: [] });
        chosen = candidate;
        break;
      }
    }
    if (!chosen && options.length) chosen = options[0].id;
    this.setOptions(options, chosen);
  }

  markUnavailable() {
    if (!this.select.value) this.setOptions([{ id: "", label: t("No models available") }], "");
  }

  setOptions(options, chosen) {
    const nodes = options.map(({ id, label }) => {
      const option = document.createElement("option");
      option.value = id;
      option.textContent = label;
      return option;
    });
    this.select.replaceChildren(...nodes);
    this.select.value = chosen;
  }
}
