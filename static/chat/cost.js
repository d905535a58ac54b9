// The chat header's "cost so far": the conversation's usage records, summed by the server (in the
// page data at load, fetched again when a reply ends: its record is written with its final write).
import { formatCost } from "./messages.js";
import { t } from "./i18n.js";

export class ConversationCost {
  constructor(el, usageUrl) {
    this.el = el;
    this.usageUrl = usageUrl; // with CONVERSATION_ID in place of the id
    this.conversation = null;
    this.asked = 0; // answers to older requests are dropped
  }

  show(conversation, usage) {
    this.conversation = conversation;
    if (!conversation || !usage || usage.records === 0) {
      this.el.hidden = true;
      this.el.textContent = "";
      return;
    }
    const parts = [t("This chat: {cost}", { cost: formatCost(usage.cost) || "$0" })];
    if (usage.unknown_price) {
      parts.push(t("+ {count} at unknown price", { count: usage.unknown_price }));
    }
    if (usage.estimated) parts.push(t("(partly estimated)"));
    this.el.textContent = parts.join(" ");
    this.el.hidden = false;
  }

  async refresh() {
    const conversation = this.conversation;
    if (!conversation) return;
    const asked = ++this.asked;
    try {
      const response = await fetch(this.usageUrl.replace("CONVERSATION_ID", conversation),
                                   { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const usage = await response.json();
      if (asked === this.asked && conversation === this.conversation) {
        this.show(conversation, usage);
      }
    } catch {
      // Offline for a moment: the figure refreshes with the next reply.
    }
  }

  /** A conversation this page just started: it has no cost yet, until its first reply ends. */
  adopt(conversation) {
    this.conversation = conversation;
  }
}
