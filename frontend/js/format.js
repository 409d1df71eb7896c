// Turning numbers, times and statuses into short readable text.

/** A number with `digits` significant digits; "—" for null/NaN. */
export function num(value, digits = 4) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (!Number.isFinite(value)) return value > 0 ? "∞" : "−∞";
  if (value !== 0 && (Math.abs(value) >= 1e5 || Math.abs(value) < 1e-3)) {
    return value.toExponential(Math.max(0, digits - 1));
  }
  return String(Number(value.toPrecision(digits)));
}

/** Seconds → "1 h 02 min", "3 min 05 s", "12 s"; "—" for null. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

/** Unix seconds → "2026-11-23 06:38" in local time; "—" for null. */
export function when(unixSeconds) {
  if (!unixSeconds) return "—";
  const d = new Date(unixSeconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** How long a run has run (or ran): finished − started, or now − started. */
export function runDuration(run) {
  if (!run.started_at) return null;
  const end = run.finished_at || (run.status === "running" ? Date.now() / 1000 : run.heartbeat_at);
  return end ? end - run.started_at : null;
}

/** "β-DPO" / "DPO" / "IPO + β-DPO filtering" … from a run's config. */
export function method(config) {
  const kind = (config?.loss?.kind || "dpo").toUpperCase().replace("_", "-");
  const b = config?.beta_dpo;
  if (!b?.enabled) return kind;
  if (b.dynamic_beta && b.filtering) return kind === "DPO" ? "β-DPO" : `${kind} + β-DPO`;
  if (b.dynamic_beta) return `${kind} + dynamic β`;
  if (b.filtering) return `${kind} + filtering`;
  return kind;
}

/** Progress 0..1 → "42 %". */
export function percent(fraction) {
  if (fraction === null || fraction === undefined || !Number.isFinite(fraction)) return "—";
  return `${Math.round(fraction * 100)} %`;
}

/** "12 / 60" (step of total), "—" when unknown. */
export function stepOf(run) {
  if (run.step === null || run.step === undefined) return "—";
  return run.total_steps ? `${run.step} / ${run.total_steps}` : String(run.step);
}

export const ACTIVE = new Set(["queued", "running"]);
