// The HTTP API (docs/API.md): JSON in and out, the CSRF header on state-changing requests, and a
// redirect to /login when the token session is missing (401).

const CSRF_COOKIE = "alignscope_csrf";

/** An error reply: status, message, and for a 422 the list of {loc, field, msg}. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : `request failed (${status})`);
    this.status = status;
    this.detail = detail;
    this.errors = Array.isArray(detail) ? detail : [];
  }
}

function csrfToken() {
  const entry = document.cookie.split("; ").find((c) => c.startsWith(`${CSRF_COOKIE}=`));
  return entry ? decodeURIComponent(entry.slice(CSRF_COOKIE.length + 1)) : null;
}

/** Send the browser to the login page, coming back to the current view afterwards. */
export function toLogin() {
  const next = location.pathname + location.hash;
  location.assign(`/login?next=${encodeURIComponent(next)}`);
}

function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value === null || value === undefined || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) search.append(name, String(item));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** fetch /api{path} and parse the JSON reply; throws ApiError (after redirecting on 401). */
export async function request(method, path, { params, body, form } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") {
    const token = csrfToken();
    if (token) headers["X-CSRF-Token"] = token;
  }
  let payload;
  if (form) payload = form;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const reply = await fetch(`/api${path}${query(params)}`, {
    method, headers, body: payload, credentials: "same-origin",
  });
  if (reply.status === 401) {
    toLogin();
    throw new ApiError(401, "log in first");
  }
  if (reply.status === 204) return null;
  const data = await reply.json().catch(() => null);
  if (!reply.ok) throw new ApiError(reply.status, data?.detail ?? reply.statusText);
  return data;
}

const enc = encodeURIComponent;

export const api = {
  runs: (filters) => request("GET", "/runs", { params: filters }),
  run: (id) => request("GET", `/runs/${enc(id)}`),
  createRun: (config) => request("POST", "/runs", { body: config }),
  createGroup: (group, base) => request("POST", "/groups", { body: { group, base } }),
  stop: (id) => request("POST", `/runs/${enc(id)}/stop`),
  resume: (id) => request("POST", `/runs/${enc(id)}/resume`),
  clone: (id, overrides) => request("POST", `/runs/${enc(id)}/clone`, { body: { overrides } }),
  remove: (id) => request("DELETE", `/runs/${enc(id)}`),
  keys: (id) => request("GET", `/runs/${enc(id)}/keys`),
  metrics: (id, keys, maxPoints = 1000) =>
    request("GET", `/runs/${enc(id)}/metrics`, { params: { key: keys, max_points: maxPoints } }),
  pairs: (id, params) => request("GET", `/runs/${enc(id)}/pairs`, { params }),
  pairSummary: (id, params) => request("GET", `/runs/${enc(id)}/pairs/summary`, { params }),
  betaAdvice: (id, firstSteps = 10) =>
    request("GET", `/runs/${enc(id)}/beta_advice`, { params: { first_steps: firstSteps } }),
  evaluations: (id) => request("GET", `/runs/${enc(id)}/evaluations`),
  compare: (runs, keys, maxPoints = 1000) =>
    request("GET", "/compare", { params: { run: runs, key: keys, max_points: maxPoints } }),
  schema: () => request("GET", "/schema"),
  presets: () => request("GET", "/presets"),
  allowances: () => request("GET", "/allowances"),
  workers: () => request("GET", "/workers"),
  datasets: () => request("GET", "/datasets"),
  preview: (name) => request("GET", `/datasets/${enc(name)}/preview`),
  upload: (file) => {
    const form = new FormData();
    form.append("file", file, file.name);
    return request("POST", "/datasets", { form });
  },
  exportUrl: (id, what, format) => `/api/runs/${enc(id)}/export${query({ what, format })}`,
};

/** A readable one-line message for any error thrown by `request`. */
export function message(error) {
  if (error instanceof ApiError && error.errors.length) {
    return error.errors.map((e) => `${e.field || "request"}: ${e.msg}`).join("; ");
  }
  return error?.message || String(error);
}
