// The shell: sign-in gate, hash router, project header with tabs and the Train button.
// Routes:  #/                         project list          (projects.js)
//          #/p/{id}[/images]          training images       (library.js, boxes.js)
//          #/p/{id}/performance[/it]  iterations + metrics  (model.js; also the Train dialog)
//          #/p/{id}/predictions[/it]  stored predictions    (review.js)
//          #/p/{id}/quicktest         quick test            (review.js)
//          #/p/{id}/settings          project settings      (projects.js)
import * as api from "./api.js";
import { h, clear, field, showError, action } from "./ui.js";

const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");
const account = document.getElementById("account");

const TABS = [
  ["images", "Training Images", () => import("./library.js")],
  ["performance", "Performance", () => import("./model.js")],
  ["predictions", "Predictions", () => import("./review.js").then((m) => ({ render: m.renderPredictions }))],
  ["quicktest", "Quick Test", () => import("./review.js").then((m) => ({ render: m.renderQuickTest }))],
  ["settings", "Settings", () => import("./projects.js").then((m) => ({ render: m.renderSettings }))],
];

let cleanup = null;
let routeSeq = 0;
let domainsCache = null;
let current = null; // the open project's ctx, reused while the user moves between its tabs

export async function domains() {
  if (!domainsCache) domainsCache = await api.get("/domains");
  return domainsCache;
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, q = ""] = raw.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(q) };
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// ---- sign in ---------------------------------------------------------------------------------------------
function renderLogin(message) {
  crumbs.replaceChildren();
  account.replaceChildren();
  const key = h("input", { type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const pkey = h("input", { type: "password", autocomplete: "off", spellcheck: "false" });
  const status = h("p", { role: "alert", class: "error" }, message || "");
  const form = h("form", { class: "panel login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Sign in"),
    h("p", { class: "muted" }, "Type the training key of this service. It is kept in this browser tab only ",
      "and sent with each request; close the tab to forget it."),
    field("Training key", key),
    field("Prediction key (optional)", pkey, "Used by the Prediction URL panel's test call."),
    status,
    h("button", { type: "submit", class: "primary" }, "Sign in"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    status.textContent = "";
    const btn = form.querySelector("button[type=submit]");
    btn.disabled = true;
    try {
      await api.checkKey(key.value.trim());
      api.session.key = key.value.trim();
      api.session.predictionKey = pkey.value.trim();
      signedOutBecause = "";
      route();
    } catch (err) {
      status.textContent = err.status === 401
        ? "That training key was not accepted. Check it and try again." : (err.text || String(err.message));
      key.focus();
    } finally {
      btn.disabled = false;
    }
  });
  clear(main, form);
  key.focus();
}

// Why the sign-in form shows, until the next sign-in: a route that runs after the key was refused (another
// request, a hash change) keeps saying so instead of showing a bare form.
let signedOutBecause = "";

function signOut() {
  signedOutBecause = "";
  api.session.key = "";
  api.session.predictionKey = "";
  current = null;
  renderLogin();
}

api.whenUnauthorized(() => {
  api.session.key = "";
  signedOutBecause = "Your training key is no longer accepted. Sign in again.";
  renderLogin(signedOutBecause);
});

function renderAccount() {
  account.replaceChildren(h("button", { type: "button", onclick: signOut }, "Sign out"));
}

// ---- project context -------------------------------------------------------------------------------------
async function projectContext(projectId) {
  if (current && current.projectId === projectId) return current;
  const [project, tags, iterations, all] = await Promise.all([
    api.project.get(projectId), api.project.tags(projectId), api.project.iterations(projectId), domains()]);
  const domain = all.find((d) => d.id === project.settings.domainId) || { type: "Classification", name: "?" };
  const ctx = {
    projectId, project, domain, domains: all, tags, iterations,
    isDetection: domain.type === "ObjectDetection",
    async reloadTags() { ctx.tags = await api.project.tags(projectId); return ctx.tags; },
    async reloadIterations() { ctx.iterations = await api.project.iterations(projectId); return ctx.iterations; },
    async reloadProject() { ctx.project = await api.project.get(projectId); renderHeader(ctx); return ctx.project; },
    navigate,
    forget() { if (current === ctx) current = null; },
  };
  current = ctx;
  return ctx;
}

let header = null;

function renderHeader(ctx, tab) {
  const kind = ctx.isDetection ? "Object Detection"
    : `Classification (${ctx.project.settings.classificationType || "Multiclass"})`;
  header = h("div", { class: "project-head" },
    h("h1", {}, ctx.project.name),
    h("span", { class: "badge" }, kind),
    h("span", { class: "muted" }, ctx.domain.name),
    h("span", { class: "spacer" }),
    action("Train", async () => {
      const { openTrainDialog } = await import("./model.js");
      await openTrainDialog(ctx);
    }, { class: "primary", "data-action": "train" }));
  const nav = h("nav", { class: "tabs", "aria-label": "Project" },
    TABS.map(([id, label]) => h("a", { href: `#/p/${ctx.projectId}/${id}`, "aria-current": id === tab ? "page" : null },
      label)));
  crumbs.replaceChildren(h("a", { href: "#/" }, "Projects"), h("span", { "aria-hidden": "true" }, "›"),
    h("span", {}, ctx.project.name));
  return [header, nav];
}

// ---- router ----------------------------------------------------------------------------------------------
async function route() {
  const seq = ++routeSeq;
  if (cleanup) { try { cleanup(); } catch { /* a page's cleanup never blocks navigation */ } cleanup = null; }
  if (!api.session.key) { renderLogin(signedOutBecause); return; }
  renderAccount();
  const { parts, query } = parseHash();
  try {
    if (parts[0] === "p" && parts[1]) {
      const tabId = parts[2] || "images";
      const tab = TABS.find((t) => t[0] === tabId);
      if (!tab) { navigate(`#/p/${parts[1]}/images`); return; }
      const ctx = await projectContext(parts[1]);
      const [mod] = await Promise.all([tab[2]()]);
      if (seq !== routeSeq) return;
      ctx.params = parts.slice(3);
      ctx.query = query;
      const body = h("div", { class: `page page-${tabId}` });
      clear(main, renderHeader(ctx, tabId), body);
      document.title = `${ctx.project.name} · ${tab[1]} · Custom Vision`;
      const done = await mod.render(body, ctx);
      if (seq === routeSeq) cleanup = typeof done === "function" ? done : null;
      else if (typeof done === "function") done();
    } else {
      current = null;
      crumbs.replaceChildren(h("span", {}, "Projects"));
      document.title = "Projects · Custom Vision";
      const mod = await import("./projects.js");
      if (seq !== routeSeq) return;
      await mod.renderList(main, { navigate, domains });
    }
  } catch (err) {
    if (seq !== routeSeq) return;
    if (err.status === 401) return; // the sign-in form is already showing
    if (err.status === 404 || err.code === "NotFoundProject") {
      current = null;
      clear(main, h("h1", {}, "Not found"), h("p", { class: "error", role: "alert" }, err.text || err.message),
        h("p", {}, h("a", { href: "#/" }, "Back to projects")));
      return;
    }
    clear(main, h("h1", {}, "Something went wrong"));
    const where = h("div");
    main.append(where);
    showError(err, where);
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("unhandledrejection", (e) => {
  // Nothing reaches the user as a stack trace: an unexpected rejection becomes one readable line.
  e.preventDefault();
  showError(e.reason);
});
route();
