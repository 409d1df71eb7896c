// Workers (#/workers): every worker process as it last reported itself — host, queues, GPUs and
// CUDA, free memory, the run it trains, last seen — live ones first; polled every 5 s. A worker
// silent for longer than live_after_s (or shut down) is shown as gone.

import { api, message } from "../api.js";
import { h, replace, stateBox } from "../dom.js";
import { duration, when } from "../format.js";

const POLL_MS = 5000;
const QUEUE_NAMES = { celery: "cpu", gpu: "gpu" };

export async function mount(root) {
  const table = h("div", { id: "workers-table" }, stateBox("loading", "Loading workers…"));
  replace(root,
    h("div", { class: "page-head" }, h("h1", {}, "Workers"),
      h("span", { class: "muted small" }, "what each worker offers and holds, as it last reported itself")),
    table);
  let timer = null;
  let stopped = false;
  const refresh = async () => {
    await draw(table);
    root.dataset.ready = "1";
    if (!stopped) timer = setTimeout(refresh, POLL_MS);
  };
  await refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

async function draw(node) {
  let workers;
  try {
    workers = await api.workers();
  } catch (error) {
    if (error.status !== 401) replace(node, stateBox("error", `Could not load the workers: ${message(error)}`));
    return;
  }
  if (!workers.length) {
    replace(node, stateBox("empty",
      "No worker has reported yet. `alignscope serve` starts one; on other machines run `alignscope worker`."));
    return;
  }
  const live = workers.filter((w) => w.live).length;
  replace(node,
    h("p", { class: "muted small", id: "workers-summary" },
      `${live} live of ${workers.length}; ${workers.filter((w) => w.live && w.cuda).length} live with CUDA`),
    h("table", { class: "table" },
      h("thead", {}, h("tr", {}, ...["state", "host", "pid", "queues", "GPUs / CUDA", "free memory", "run", "last seen", "up"]
        .map((label) => h("th", {}, label)))),
      h("tbody", {}, workers.map(row))));
}

function row(worker) {
  const state = worker.live ? worker.state : (worker.state === "stopped" ? "stopped" : "gone");
  return h("tr", { dataset: { worker: worker.id, live: worker.live ? "1" : "0" } },
    h("td", {}, h("span", { class: `badge ${badgeClass(state)}`, title: stateTitle(worker, state) }, state)),
    h("td", {}, worker.host),
    h("td", { class: "num" }, String(worker.pid)),
    h("td", {}, worker.queues.map((q) => QUEUE_NAMES[q] || q).join(", ")),
    h("td", {}, devices(worker)),
    h("td", { class: "num" }, bytes(worker.free_memory_bytes)),
    h("td", {}, worker.run_id && worker.live ? h("a", { href: `#/run/${worker.run_id}` }, worker.run_id.slice(0, 8)) : "—"),
    h("td", { title: when(worker.last_seen) }, `${duration(Math.max(0, Date.now() / 1000 - worker.last_seen))} ago`),
    h("td", {}, duration(worker.last_seen - worker.started_at)));
}

function devices(worker) {
  if (!worker.cuda) return h("span", { class: "muted" }, "CPU only");
  const cards = worker.devices.map((d) => `${d.name} (${bytes(d.free_bytes)} free of ${bytes(d.total_bytes)})`);
  return h("span", {}, `CUDA ${worker.cuda} · ${worker.devices.length} GPU${worker.devices.length === 1 ? "" : "s"}`,
    cards.length ? h("div", { class: "small muted" }, cards.join("; ")) : null);
}

function bytes(value) {
  if (value == null) return "—";
  const gib = value / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(1)} GiB` : `${Math.round(value / 2 ** 20)} MiB`;
}

function badgeClass(state) {
  return { busy: "running", idle: "succeeded", stopped: "stopped", gone: "failed" }[state] || "";
}

function stateTitle(worker, state) {
  if (state === "gone") return `not seen for more than ${worker.live_after_s} s: killed, or its host is down`;
  if (state === "stopped") return "shut down cleanly";
  return state === "busy" ? "training a run" : "waiting for a run";
}
