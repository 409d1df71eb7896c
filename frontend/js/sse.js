// Live events over Server-Sent Events. The browser's EventSource reconnects by itself and sends
// Last-Event-ID (the last metric seq it saw), so the server resumes with no gap and no duplicate.

import { api } from "./api.js";

/**
 * Open `/api{path}` (e.g. "/runs/ID/stream" or "/stream") from seq `after` (null: from now on).
 * handlers: {points(data), status(run), pairs(data), deleted(data), state("live"|"reconnecting")}.
 * Returns a close() function.
 */
export function subscribe(path, after, handlers) {
  const url = after === null || after === undefined ? `/api${path}` : `/api${path}?after=${after}`;
  const source = new EventSource(url);
  const on = (name) => (event) => {
    if (!handlers[name]) return;
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    handlers[name](data);
  };
  for (const name of ["points", "status", "pairs", "deleted"]) source.addEventListener(name, on(name));
  source.onopen = () => handlers.state?.("live");
  source.onerror = () => {
    handlers.state?.(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
    if (source.readyState === EventSource.CLOSED) checkSession();
  };
  return () => source.close();
}

/** An EventSource cannot read a 401: ask a cheap route, which redirects to /login when needed. */
function checkSession() {
  api.schema().catch(() => {});
}
