// A failed run's error as people can act on it: the message, once; a traceback (older rows, or a
// crashed process's output) folded away under "technical details"; and, for the operator, a link to
// the trainer's log of the attempt (GET /api/runs/ID/log), which keeps the traceback.

import { h } from "../dom.js";

const TRACE_START = /\n?(Traceback \(most recent call last\):|\s+File ")/;

/** Split an error text into {message, details}: what precedes a Python traceback, and the rest. */
export function splitError(text) {
  const at = text.search(TRACE_START);
  if (at < 0) return { message: text.trim(), details: "" };
  const details = text.slice(at).trim();
  const last = details.split("\n").map((line) => line.trim()).filter(Boolean).pop() || "";
  const message = text.slice(0, at).trim() || last;
  return { message, details };
}

/** Whether the run's progress message only repeats its error ("failed: <the error>"). */
export function repeatsError(run) {
  if (!run.error || !run.message) return false;
  const text = run.message.replace(/^failed:\s*/, "");
  return run.error.includes(text) || text.includes(splitError(run.error).message);
}

/** The error box of a failed run, or null. */
export function errorBox(run) {
  if (!run.error) return null;
  const { message, details } = splitError(run.error);
  const log = h("a", { href: `/api/runs/${encodeURIComponent(run.id)}/log?attempt=${run.attempt}`, target: "_blank",
    rel: "noopener", id: "run-log-link" }, "trainer log of this attempt");
  return h("div", { class: "alert", role: "alert", id: "run-error" },
    h("strong", {}, "Error"),
    h("p", { class: "error-message", id: "run-error-message" }, message),
    details ? h("details", {}, h("summary", { class: "small" }, "technical details"),
      h("pre", { class: "mono small" }, details)) : null,
    h("p", { class: "small muted" }, "For the operator: the ", log, " has the full output."));
}
