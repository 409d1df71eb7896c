// What this deployment lets a run reach (GET /api/allowances, SECURITY.md): the launch form offers
// the operator's judge endpoints, their models and the allowed rule judges as suggestions under
// their fields, and says the caps, so a config is right before the server has to refuse it.

import { api } from "../api.js";
import { h } from "../dom.js";

let loaded = null;
const allowances = () => (loaded ??= api.allowances().catch(() => null));

const CHOICES = {
  "evaluation.judge.endpoint": (a) => a.judge_endpoints.map((e) => e.name),
  "evaluation.judge.model": (a) => [...new Set(a.judge_endpoints.flatMap((e) => e.models))],
  "evaluation.judge.entry_point": (a) => a.rule_judges,
};
const CAPS = {
  num_processes: (a) => `at most ${a.max_processes} on this deployment`,
};

/** Widgets for SchemaForm: a suggestion list (or a cap) under each field the deployment restricts. */
export function allowanceWidgets() {
  const widgets = {};
  for (const [path, choices] of Object.entries(CHOICES)) {
    widgets[path] = (input) => {
      const id = `offered-${path.replaceAll(".", "-")}`;
      const list = h("datalist", { id });
      const note = h("span", { class: "hint", id: `${id}-note` });
      input.setAttribute("list", id);
      allowances().then((a) => {
        if (!a) return;
        const names = choices(a);
        list.append(...names.map((name) => h("option", { value: name })));
        note.textContent = names.length ? `offered here: ${names.join(", ")}` : "none configured by the operator";
      });
      return h("span", {}, list, note);
    };
  }
  for (const [path, text] of Object.entries(CAPS)) {
    widgets[path] = () => {
      const note = h("span", { class: "hint", id: `cap-${path}` });
      allowances().then((a) => { if (a) note.textContent = text(a); });
      return note;
    };
  }
  return widgets;
}
