// One run's live data: downsampled history from GET /metrics first, then the run's SSE stream from
// the history's cursor (last_seq), so nothing is missed or counted twice. Points are handed to the
// page in batches (at most every FLUSH_MS); when a series grows past REBASE_AT points the history is
// re-loaded downsampled, so long live sessions stay fluid.

import { api } from "../api.js";
import { subscribe } from "../sse.js";
import { SeriesStore } from "../store.js";

export const HISTORY_POINTS = 2000;
const FLUSH_MS = 250;
const REBASE_AT = 15000;

export class LiveRun {
  /**
   * handlers: {points(fresh Map key → {steps, values}), rebased(), status(run), pairs({step}),
   * state("live"|"reconnecting"|"closed"), deleted()}.
   */
  constructor(runId, handlers) {
    this.runId = runId;
    this.handlers = handlers;
    this.store = new SeriesStore();
    this.pending = new Map();
    this.timer = null;
    this.close = () => {};
  }

  /** Load the history, then subscribe. Resolves once the history is in the store. */
  async start() {
    const history = await api.metrics(this.runId, null, HISTORY_POINTS);
    this.store.load(history.series);
    this.store.lineage = history.lineage || [];
    this.close = subscribe(`/runs/${encodeURIComponent(this.runId)}/stream`, history.last_seq, {
      points: (data) => this.receive(data.points),
      status: (run) => this.handlers.status?.(run),
      pairs: (data) => this.handlers.pairs?.(data),
      deleted: () => {
        this.close();
        this.handlers.deleted?.();
      },
      state: (state) => this.handlers.state?.(state),
    });
  }

  receive(points) {
    const added = this.store.append(points);
    for (const [key, part] of added) {
      const into = this.pending.get(key) || { steps: [], values: [] };
      into.steps.push(...part.steps);
      into.values.push(...part.values);
      this.pending.set(key, into);
    }
    if (added.size && this.timer === null) this.timer = setTimeout(() => this.flush(), FLUSH_MS);
  }

  async flush() {
    this.timer = null;
    const fresh = this.pending;
    this.pending = new Map();
    if (this.store.longest() > REBASE_AT) {
      await this.reload();
      return;
    }
    this.handlers.points?.(fresh);
  }

  /** Re-read the stored history (keeping newer live points) and redraw: the page then shows what the
   * store holds, whatever the stream delivered (used when a run ends, and when the run reports steps
   * the page has no points for). */
  async reload() {
    const history = await api.metrics(this.runId, null, HISTORY_POINTS);
    this.store.rebase(history.series);
    this.store.lineage = history.lineage || [];
    await this.handlers.rebased?.();
  }

  stop() {
    this.close();
    clearTimeout(this.timer);
  }
}
