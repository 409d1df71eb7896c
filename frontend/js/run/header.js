// The run page's header: status, step/total, ETA, attempt, timing, and stop / resume / clone.
// Built once and updated in place on every status event, so its buttons stay clickable while the
// run streams steps.

import { api, message } from "../api.js";
import { h, replace, stat } from "../dom.js";
import { ACTIVE, duration, method, num, percent, runDuration, stepOf, when } from "../format.js";
import { adviceBox, scopeNote } from "./advice.js";
import { errorBox, repeatsError } from "./error.js";

/** "resumes <parent> after step N" for a resume (its history includes the parent's), else "parent run". */
function parentLink(run) {
  if (!run.parent_id) return null;
  const link = h("a", { href: `#/run/${run.parent_id}`, id: "parent-link" }, "parent run");
  if (run.resume_step === null || run.resume_step === undefined) return h("span", {}, "cloned from ", link);
  return h("span", { id: "resumed-from" }, "resumes its ", link, ` after step ${run.resume_step}: `
    + `steps up to ${run.resume_step} are the parent's`);
}

export class RunHeader {
  constructor(node, runId) {
    this.node = node;
    this.note = h("span", { class: "small muted", role: "status", id: "action-note" });
    this.dot = h("span", { class: "live-dot", title: "stream" });
    this.streamText = h("span", { class: "small muted" }, "connecting…");
    this.name = h("h1", { id: "run-name" });
    this.badge = h("span", { class: "badge", id: "run-status" });
    this.summary = h("span", { class: "muted" });
    this.links = h("span", { class: "small" });
    this.stats = h("div", { class: "stats" });
    this.external = h("div", { class: "small muted", id: "external-note", hidden: true });
    this.clone = h("a", { class: "button", href: `#/new?from=${runId}`, id: "clone-run" }, "Clone…");
    this.error = h("div");
    this.stop = h("button", { id: "stop-run", onclick: () => this.act("Stop", () => api.stop(runId)) }, "Stop");
    this.resume = h("button", { id: "resume-run", onclick: async () => {
      const next = await this.act("Resume", () => api.resume(runId));
      if (next) location.hash = `#/run/${next.id}`;
    } }, "Resume");
    replace(node,
      h("div", { class: "run-head" },
        h("div", { class: "title" }, this.name, this.badge, this.summary, this.links, h("span", {}, this.dot, this.streamText)),
        h("div", { class: "actions" }, this.stop, this.resume,
          this.clone,
          h("a", { class: "button", href: `#/run/${runId}/pairs`, id: "open-pairs" }, "Outlier inspector"),
          h("a", { class: "button", href: api.exportUrl(runId, "metrics", "csv"), download: "" }, "Metrics CSV"),
          h("a", { class: "button", href: api.exportUrl(runId, "pairs", "csv"), download: "" }, "Pairs CSV")),
        this.stats, adviceBox(runId), this.external, this.note),
      this.error);
  }

  /** The stream's state: "live", "reconnecting" or "closed". A finished run's dot is grey whatever the
   * stream does: nothing more will arrive. */
  streamState(state) {
    this.stream = state;
    this.paintDot();
  }

  paintDot() {
    const ended = this.status && !ACTIVE.has(this.status);
    const state = ended ? "ended" : this.stream || "connecting";
    this.dot.className = `live-dot ${state}`;
    this.dot.dataset.state = state;
    this.streamText.textContent = ended ? `${this.status}: final values`
      : { live: "live", reconnecting: "reconnecting…", closed: "stream closed", connecting: "connecting…" }[state];
  }

  async act(label, action) {
    this.note.textContent = `${label}…`;
    try {
      const result = await action();
      this.note.textContent = `${label}: done.`;
      return result;
    } catch (error) {
      this.note.textContent = `${label} failed: ${message(error)}`;
      return null;
    }
  }

  render(run) {
    const active = ACTIVE.has(run.status);
    this.status = run.status;
    this.paintDot();
    this.name.textContent = run.name;
    this.badge.className = `badge ${run.status}`;
    this.badge.dataset.status = run.status;
    this.badge.textContent = run.stop_requested && active ? "stopping" : run.status;
    replace(this.summary, `${method(run.config)} · β0 ${num(run.beta0, 3)}${run.preset ? ` · preset ${run.preset}` : ""}`,
      scopeNote(run.config));
    replace(this.links, parentLink(run));
    this.stop.disabled = !active || run.stop_requested;
    this.resume.disabled = !run.resumable;
    this.resume.title = run.resume_blocked ? `Resume: ${run.resume_blocked}` : "continue from the last checkpoint as a new run";
    for (const node of [this.resume, this.clone]) node.style.display = run.external ? "none" : "";
    this.external.hidden = !run.external;
    if (run.external) {
      this.summary.textContent += ` · external (${run.source})`;
      this.external.textContent = `External run: trained by ${run.source === "trl" ? "TRL" : "a Python script"} `
        + "and streamed in through the ingest API. Stop asks it to stop at its next step. Resume and clone are "
        + "not offered: AlignScope has neither its checkpoint nor a config its own engine can run; rerun the "
        + "trainer's script instead.";
    }
    replace(this.stats,
      stat("step", stepOf(run), { id: "run-step" }),
      stat("progress", percent(run.progress)),
      stat("ETA", run.status === "running" ? duration(run.eta_s) : "—"),
      stat("attempt", String(run.attempt)),
      stat("created", when(run.created_at)),
      stat("duration", duration(runDuration(run))),
      run.message && !repeatsError(run) ? stat("message", run.message) : null,
      run.status === "queued" && run.waiting_for ? stat("waiting for", run.waiting_for, { id: "run-waiting" }) : null,
      ["stopped", "failed"].includes(run.status) && run.resume_blocked
        ? stat("resume", run.resume_blocked, { id: "resume-blocked" }) : null);
    replace(this.error, errorBox(run));
  }
}
