// The single-page app's router: #/runs, #/new, #/run/ID, #/run/ID/pairs, #/compare?runs=a,b,
// #/groups (experiment presets and groups), #/group/ID, #/workers.
// Each page module exports mount(root, params) → cleanup (or a promise of one).

import { message } from "./api.js";
import { replace, stateBox } from "./dom.js";

const ROUTES = [
  [/^\/?$/, "runs", () => import("./pages/runs.js")],
  [/^\/runs$/, "runs", () => import("./pages/runs.js")],
  [/^\/new$/, "new", () => import("./pages/new.js")],
  [/^\/run\/([\w-]+)\/pairs$/, "runs", () => import("./pages/pairs.js")],
  [/^\/run\/([\w-]+)$/, "runs", () => import("./pages/run.js")],
  [/^\/compare$/, "compare", () => import("./pages/compare.js")],
  [/^\/groups$/, "groups", () => import("./pages/groups.js")],
  [/^\/group\/([^/]+)$/, "groups", () => import("./pages/group.js")],
  [/^\/workers$/, "workers", () => import("./pages/workers.js")],
];

let cleanup = null;
let generation = 0;

/** The current hash as {path, params (URLSearchParams)}. */
export function currentRoute() {
  const hash = location.hash.replace(/^#/, "") || "/runs";
  const [path, search = ""] = hash.split("?");
  return { path, params: new URLSearchParams(search) };
}

/** A new, empty #app in place of the old one. A page still loading for an earlier route keeps the old,
 * detached element: whatever it draws or marks ready later lands there, never over the current page. */
function freshRoot() {
  const old = document.getElementById("app");
  const root = document.createElement("main");
  root.id = "app";
  old.replaceWith(root);
  return root;
}

async function route() {
  const mine = ++generation;
  if (cleanup) {
    const done = cleanup;
    cleanup = null;
    try {
      done();
    } catch (error) {
      console.warn("cleanup failed", error);
    }
  }
  const root = freshRoot();
  const { path, params } = currentRoute();
  const found = ROUTES.find(([pattern]) => pattern.test(path));
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", Boolean(found) && link.dataset.nav === found[1]);
  }
  if (!found) {
    replace(root, stateBox("empty", `No page at ${path}.`));
    return;
  }
  const [pattern, , load] = found;
  const match = path.match(pattern);
  root.dataset.page = found[1];
  replace(root, stateBox("loading", "Loading…"));
  try {
    const page = await load();
    if (mine !== generation) return;
    const result = await page.mount(root, { id: match[1], params });
    if (mine !== generation) {
      if (typeof result === "function") result();
      return;
    }
    cleanup = typeof result === "function" ? result : null;
  } catch (error) {
    if (mine !== generation || error?.status === 401) return;
    console.warn(error);
    replace(root, stateBox("error", `Could not load this page: ${message(error)}`));
  }
}

window.addEventListener("hashchange", route);
route();
