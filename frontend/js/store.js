// A run's series in the browser: the downsampled history from GET /metrics, then live points
// appended in step order (a point at or before a series' last step is a duplicate and dropped).

export class SeriesStore {
  constructor() {
    this.series = new Map(); // key → {steps: number[], values: (number|null)[]}
    this.timeOf = null; // step → unix seconds (set from the run's timing), or null
    this.lineage = []; // [{run_id, name, after_step, until_step}]: the runs whose steps these are
  }

  /** The resume points of the lineage: [{step, runId}] (a resumed run continues after `step`). */
  resumes() {
    return this.lineage.filter((s) => s.after_step !== null).map((s) => ({ step: s.after_step, runId: s.run_id }));
  }

  has(key) {
    return (this.series.get(key)?.steps.length ?? 0) > 0;
  }

  get(key) {
    return this.series.get(key) ?? { steps: [], values: [] };
  }

  keys() {
    return [...this.series.keys()].filter((k) => this.has(k)).sort();
  }

  /** Replace everything with a GET /metrics `series` object (key → {steps, values}). */
  load(series) {
    this.series.clear();
    for (const [key, s] of Object.entries(series || {})) {
      this.series.set(key, { steps: [...s.steps], values: s.values.map(clean) });
    }
  }

  /** Re-load history but keep live points newer than what the history covers. */
  rebase(series) {
    const old = this.series;
    this.load(series);
    for (const [key, s] of old) {
      const fresh = this.get(key);
      const last = fresh.steps.length ? fresh.steps[fresh.steps.length - 1] : -Infinity;
      const from = s.steps.findIndex((step) => step > last);
      if (from < 0) continue;
      this.series.set(key, {
        steps: fresh.steps.concat(s.steps.slice(from)),
        values: fresh.values.concat(s.values.slice(from)),
      });
    }
  }

  /** Append SSE points [{key, step, value}]; returns Map key → {steps, values} actually added. */
  append(points) {
    const added = new Map();
    for (const p of points) {
      let s = this.series.get(p.key);
      if (!s) {
        s = { steps: [], values: [] };
        this.series.set(p.key, s);
      }
      const last = s.steps.length ? s.steps[s.steps.length - 1] : -Infinity;
      if (p.step <= last) continue;
      s.steps.push(p.step);
      s.values.push(clean(p.value));
      if (!added.has(p.key)) added.set(p.key, { steps: [], values: [] });
      added.get(p.key).steps.push(p.step);
      added.get(p.key).values.push(clean(p.value));
    }
    return added;
  }

  /** The longest series length (to decide when to re-load downsampled history). */
  longest() {
    let n = 0;
    for (const s of this.series.values()) n = Math.max(n, s.steps.length);
    return n;
  }

  /** The last finite value of `key`, or null. */
  last(key) {
    const s = this.get(key);
    for (let i = s.values.length - 1; i >= 0; i -= 1) if (s.values[i] !== null) return s.values[i];
    return null;
  }
}

function clean(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/** step → unix seconds, linear between the run's start and its last heartbeat (an estimate: the
 * API sends steps, not wall times). */
export function timing(run) {
  const end = run.finished_at || run.heartbeat_at;
  if (!run.started_at || !end || !run.step) return null;
  const perStep = (end - run.started_at) / run.step;
  return (step) => run.started_at + step * perStep;
}
