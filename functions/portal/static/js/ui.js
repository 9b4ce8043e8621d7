// Small DOM helpers shared by every page. No innerHTML with data: text goes in as text nodes.
// Styles are set through the CSSOM (el.style.x = ...), never through style attributes (the CSP forbids them).

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uid = 0;
export const nextId = (prefix = "f") => `${prefix}-${++uid}`;

// A labelled form field: <label for> + control, so every input has a name a screen reader reads.
export function field(label, control, hint) {
  control.id = control.id || nextId("field");
  const hintEl = hint ? h("small", { class: "hint", id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control, hintEl);
}

// Status line for the whole app (aria-live), used for successes and errors alike.
export function toast(message, kind = "info") {
  const region = document.getElementById("toasts");
  const el = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  region.append(el);
  setTimeout(() => el.remove(), kind === "error" ? 9000 : 4000);
  return el;
}

// Shows an error from the API (ApiError.text) or anything else as one readable line, never a stack.
export function showError(err, where) {
  const text = err && err.text ? err.text : (err && err.message) || String(err);
  if (where) clear(where, h("p", { class: "error", role: "alert" }, text));
  else toast(text, "error");
}

// A modal <dialog>: resolves to the value of the button pressed (or null on Escape / Cancel).
export function dialog(title, body, buttons = [["Cancel", null], ["OK", true]]) {
  return new Promise((resolve) => {
    const titleId = nextId("dlg");
    const dlg = h("dialog", { class: "dialog", "aria-labelledby": titleId });
    const form = h("form", { method: "dialog" });
    const actions = h("div", { class: "actions" });
    buttons.forEach(([label, value, cls], i) => actions.append(h("button", {
      type: value === null ? "button" : "submit", value: String(i), class: cls || (value ? "primary" : ""),
      onclick: value === null ? () => dlg.close() : undefined }, label)));
    form.append(h("h2", { id: titleId }, title), body || "", actions);
    dlg.append(form);
    let chosen = null;
    form.addEventListener("submit", (e) => {
      const i = e.submitter ? Number(e.submitter.value) : buttons.findIndex((b) => b[1] !== null);
      chosen = buttons[i][1];
    });
    dlg.addEventListener("close", () => { dlg.remove(); resolve(chosen); });
    document.body.append(dlg);
    dlg.showModal();
  });
}

export const confirm = (title, message, action = "Delete") =>
  dialog(title, h("p", {}, message), [["Cancel", null], [action, true, "danger"]]);

export const pct = (x) => (x === null || x === undefined || Number.isNaN(x) ? "–" : `${(100 * x).toFixed(1)}%`);
export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");

// Debounce for sliders and search boxes.
export function debounce(fn, ms) {
  let t;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

// A button that disables itself while its async action runs and reports the action's error.
export function action(label, run, attrs = {}) {
  const btn = h("button", { type: "button", ...attrs }, label);
  btn.addEventListener("click", async () => {
    btn.disabled = true;
    try { await run(btn); } catch (e) { showError(e); } finally { btn.disabled = false; }
  });
  return btn;
}
