// Boxes over an image: draw, move, resize, delete, by mouse or keyboard. Coordinates are normalised (0..1),
// as the API's regions are. Boxes are positioned elements over the <img> (never a canvas: the images are
// cross-origin storage URLs).
import { h } from "./ui.js";

const MIN = 0.01;
const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

function fit(b) {
  const width = clamp(b.width, MIN, 1), height = clamp(b.height, MIN, 1);
  return { left: clamp(b.left, 0, 1 - width), top: clamp(b.top, 0, 1 - height), width, height };
}

function place(el, b) {
  el.style.left = `${100 * b.left}%`;
  el.style.top = `${100 * b.top}%`;
  el.style.width = `${100 * b.width}%`;
  el.style.height = `${100 * b.height}%`;
}

// Read-only boxes (predictions, quick test): [{box, label, cls}]
export function drawBoxes(stage, items) {
  for (const old of stage.querySelectorAll(".box.readonly")) old.remove();
  for (const { box, label, cls } of items) {
    const el = h("div", { class: `box readonly ${cls || ""}`, title: label }, h("span", { class: "box-label" }, label));
    place(el, box);
    stage.append(el);
  }
}

// An editor: regions = [{id, tagId, left, top, width, height}], with callbacks that persist each change.
//   onCreate(box) -> region | null, onChange(region, box) -> region, onDelete(region), labelOf(region)
export function boxEditor(stage, regions, { onCreate, onChange, onDelete, labelOf, onSelect }) {
  const els = new Map();
  let selected = null;

  function select(r) {
    selected = r;
    for (const [reg, el] of els) el.classList.toggle("selected", reg === r);
    if (r && els.get(r)) els.get(r).focus();
    onSelect && onSelect(r);
  }

  function render(r) {
    let el = els.get(r);
    if (!el) {
      el = h("div", { class: "box editable", tabindex: "0", role: "button",
                      "aria-label": `Box ${labelOf(r)}: arrows move, Shift+arrows resize, Delete removes` },
        h("span", { class: "box-label" }), h("button", { type: "button", class: "box-del", "aria-label": "Delete box",
                                                        tabindex: "-1" }, "×"),
        ...["nw", "ne", "sw", "se"].map((c) => h("span", { class: `handle ${c}`, dataset: { corner: c } })));
      el.addEventListener("pointerdown", (e) => startDrag(e, r));
      el.addEventListener("keydown", (e) => key(e, r));
      el.addEventListener("focus", () => { if (selected !== r) select(r); });
      el.querySelector(".box-del").addEventListener("click", (e) => { e.stopPropagation(); remove(r); });
      els.set(r, el);
      stage.append(el);
    }
    el.querySelector(".box-label").textContent = labelOf(r);
    el.setAttribute("aria-label", `Box ${labelOf(r)}: arrows move, Shift+arrows resize, Delete removes`);
    place(el, r);
  }

  async function remove(r) {
    await onDelete(r);
    els.get(r)?.remove();
    els.delete(r);
    regions.splice(regions.indexOf(r), 1);
    select(null);
  }

  async function commit(r, box) {
    const updated = await onChange(r, box);
    const el = els.get(r);
    els.delete(r);
    Object.assign(r, updated);
    els.set(r, el);
    render(r);
  }

  function rect() { return stage.getBoundingClientRect(); }

  function startDrag(e, r) {
    if (e.button !== 0 || e.target.classList.contains("box-del")) return;
    e.preventDefault();
    e.stopPropagation();
    select(r);
    const corner = e.target.dataset.corner;
    const R = rect(), x0 = e.clientX, y0 = e.clientY, start = { ...r };
    const el = els.get(r);
    el.setPointerCapture(e.pointerId);
    let moved = false;
    const move = (ev) => {
      const dx = (ev.clientX - x0) / R.width, dy = (ev.clientY - y0) / R.height;
      moved = moved || Math.abs(ev.clientX - x0) + Math.abs(ev.clientY - y0) > 2;
      let b = { ...start };
      if (!corner) { b.left = clamp(start.left + dx, 0, 1 - start.width); b.top = clamp(start.top + dy, 0, 1 - start.height); }
      else {
        if (corner.includes("w")) { b.left = clamp(start.left + dx, 0, start.left + start.width - MIN); b.width = start.left + start.width - b.left; }
        if (corner.includes("e")) b.width = clamp(start.width + dx, MIN, 1 - start.left);
        if (corner.includes("n")) { b.top = clamp(start.top + dy, 0, start.top + start.height - MIN); b.height = start.top + start.height - b.top; }
        if (corner.includes("s")) b.height = clamp(start.height + dy, MIN, 1 - start.top);
      }
      place(el, b);
      el._pending = b;
    };
    const up = () => {
      el.removeEventListener("pointermove", move);
      el.removeEventListener("pointerup", up);
      if (moved && el._pending) { const b = el._pending; el._pending = null; commit(r, b).catch(() => render(r)); }
    };
    el.addEventListener("pointermove", move);
    el.addEventListener("pointerup", up);
  }

  function key(e, r) {
    const step = 0.01;
    const d = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] }[e.key];
    if (e.key === "Delete" || e.key === "Backspace") { e.preventDefault(); remove(r); return; }
    if (!d) return;
    e.preventDefault();
    // Presses in quick succession add up: each starts from the box as last shown, and one save follows them.
    const el = els.get(r), at = el._pending || r;
    const b = e.shiftKey ? fit({ ...at, width: at.width + d[0], height: at.height + d[1] })
      : fit({ ...at, left: at.left + d[0], top: at.top + d[1] });
    place(el, b);
    el._pending = b;
    clearTimeout(el._t);
    el._t = setTimeout(() => { el._pending = null; commit(r, b).catch(() => render(r)); }, 400);
  }

  // Drawing a new box: drag on the image outside any box.
  stage.addEventListener("pointerdown", (e) => {
    if (e.button !== 0 || e.target.closest(".box")) return;
    e.preventDefault();
    const R = rect();
    const x0 = (e.clientX - R.left) / R.width, y0 = (e.clientY - R.top) / R.height;
    const ghost = h("div", { class: "box drawing" });
    stage.append(ghost);
    stage.setPointerCapture(e.pointerId);
    let b = null;
    const move = (ev) => {
      const x1 = clamp((ev.clientX - R.left) / R.width, 0, 1), y1 = clamp((ev.clientY - R.top) / R.height, 0, 1);
      b = { left: Math.min(x0, x1), top: Math.min(y0, y1), width: Math.abs(x1 - x0), height: Math.abs(y1 - y0) };
      place(ghost, b);
    };
    const up = async () => {
      stage.removeEventListener("pointermove", move);
      stage.removeEventListener("pointerup", up);
      ghost.remove();
      if (b && b.width > MIN && b.height > MIN) await add(b);
    };
    stage.addEventListener("pointermove", move);
    stage.addEventListener("pointerup", up);
  });

  async function add(box) {
    const r = await onCreate(fit(box));
    if (!r) return null;
    regions.push(r);
    render(r);
    select(r);
    return r;
  }

  regions.forEach(render);
  return { add, refresh: () => regions.forEach(render), get selected() { return selected; }, remove };
}
