// Translation for the page's modules: t("Stop") or t("Retry in {seconds} s", {seconds: 3}).
// The catalogue (msgid -> translation) comes from the page as JSON in #i18n-catalogue when the
// person's language is not English; without one, the English text is used as written.

let catalogue = null;

function loadCatalogue() {
  if (catalogue) return catalogue;
  const node = typeof document !== "undefined" && document.getElementById("i18n-catalogue");
  try {
    catalogue = node ? JSON.parse(node.textContent) : {};
  } catch {
    catalogue = {}; // a broken catalogue must not break the page: English it is
  }
  return catalogue;
}

/** The translation of `text`, with `{name}` placeholders filled from `values`. */
export function t(text, values = null) {
  const translated = loadCatalogue()[text] || text;
  if (!values) return translated;
  return translated.replace(/\{(\w+)\}/g, (whole, name) =>
    Object.hasOwn(values, name) ? String(values[name]) : whole);
}
