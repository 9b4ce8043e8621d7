// Quick Test (upload or URL, predictions drawn) and Predictions (stored predictions: sort, hover, select,
// correct the tags or boxes, add to the training set).
import * as api from "./api.js";
import { h, clear, field, toast, showError, dialog, action, pct, when } from "./ui.js";
import { drawBoxes } from "./boxes.js";
import { iterationSelect } from "./model.js";

function noIteration(root) {
  clear(root, h("div", { class: "empty" }, h("p", {}, "No trained iteration yet."), h("p", {}, "Train the project first.")));
}

function predictionView(ctx, imageUrl, predictions, threshold) {
  const stage = h("div", { class: "stage" }, h("img", { src: imageUrl, alt: "tested image" }));
  const shown = predictions.filter((p) => p.probability >= threshold);
  if (ctx.isDetection) {
    drawBoxes(stage, shown.map((p) => ({ box: p.boundingBox, label: `${p.tagName} ${pct(p.probability)}`, cls: "predicted" })));
  }
  const rows = (ctx.isDetection ? shown : predictions).map((p) => h("tr", {},
    h("td", {}, p.tagName), h("td", { class: "num" }, pct(p.probability))));
  return h("div", { class: "quicktest-result" }, stage, h("table", { class: "data predictions-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "Tag"), h("th", { class: "num" }, "Probability"))), h("tbody", {}, rows)));
}

// ---- Quick Test ----------------------------------------------------------------------------------------
export async function renderQuickTest(root, ctx) {
  await ctx.reloadIterations();
  if (!ctx.iterations.some((i) => i.status === "Completed")) { noIteration(root); return null; }
  const pick = iterationSelect(ctx);
  const file = h("input", { type: "file", accept: "image/*" });
  const url = h("input", { type: "url", placeholder: "https://…", autocomplete: "off" });
  const threshold = h("input", { type: "range", min: 0, max: 100, value: 50 });
  const out = h("output", {}, "50%");
  const result = h("div", { class: "quicktest-out", "aria-live": "polite" });
  let last = null;
  const show = () => {
    out.textContent = `${threshold.value}%`;
    if (last) clear(result, predictionView(ctx, last.src, last.reply.predictions, Number(threshold.value) / 100));
  };
  const run = async (call, src) => {
    clear(result, h("p", { class: "loading" }, "Predicting…"));
    try {
      const reply = await call();
      last = { reply, src };
      show();
    } catch (err) { showError(err, result); }
  };
  file.addEventListener("change", () => {
    const f = file.files[0];
    if (!f) return;
    run(() => api.request("POST", `/projects/${ctx.projectId}/quicktest/image`, { params: { iterationId: pick.value }, body: f }),
      URL.createObjectURL(f));
  });
  const urlForm = h("form", { class: "toolbar" }, field("Image URL", url), h("button", { type: "submit" }, "Test URL"));
  urlForm.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!url.value.trim()) return;
    run(() => api.post(`/projects/${ctx.projectId}/quicktest/url`, { iterationId: pick.value }, { url: url.value.trim() }),
      url.value.trim());
  });
  threshold.addEventListener("input", show);
  clear(root, h("section", { class: "panel quicktest" },
    h("h2", {}, "Quick Test"),
    h("div", { class: "toolbar" }, field("Iteration", pick), field("Upload an image", file),
      ctx.isDetection ? h("div", { class: "field slider" }, h("label", { for: threshold.id = "qt-threshold" }, "Show boxes above"),
        threshold, out) : null),
    urlForm,
    h("p", { class: "muted" }, "Quick tests are stored as predictions, so you can add them to the training set later."),
    result));
  return null;
}

// ---- Predictions ---------------------------------------------------------------------------------------
export async function renderPredictions(root, ctx) {
  await ctx.reloadIterations();
  if (!ctx.iterations.some((i) => i.status === "Completed")) { noIteration(root); return null; }
  const pid = ctx.projectId;
  const pick = iterationSelect(ctx, ctx.params[0]);
  const order = h("select", {}, ["Suggested", "Newest", "Oldest"].map((o) =>
    h("option", { value: o }, o === "Suggested" ? "Suggested (most useful to label first)" : o)));
  const selected = new Set();
  const grid = h("div", { class: "predictions-grid", role: "list" });
  const status = h("span", { class: "muted", "aria-live": "polite" });
  let results = [], token = null;
  const toolbar = h("div", { class: "toolbar" }, field("Iteration", pick), field("Sort by", order), status,
    h("span", { class: "spacer" }),
    action("Add selected to training set", () => addSelected(), { class: "primary", "data-action": "promote-selected" }),
    action("Delete selected", async () => {
      if (!selected.size) return;
      await api.del(`/projects/${pid}/predictions`, { ids: [...selected] });
      toast(`Deleted ${selected.size} predictions.`, "ok");
      selected.clear();
      await load();
    }, { class: "danger" }));
  const more = action("Load more", () => load(true));

  const tip = (r) => r.predictions.slice(0, 5).map((p) => `${p.tagName} ${pct(p.probability)}`).join("\n") || "no predictions";
  function paint() {
    status.textContent = `${results.length} predictions${selected.size ? `, ${selected.size} selected` : ""}`;
    clear(grid, results.map((r) => {
      const cb = h("input", { type: "checkbox", checked: selected.has(r.id), "aria-label": `Select prediction ${r.predictions[0]?.tagName || ""}` });
      cb.addEventListener("change", () => { cb.checked ? selected.add(r.id) : selected.delete(r.id); paint(); });
      const top = r.predictions[0];
      return h("div", { class: `prediction-tile${selected.has(r.id) ? " selected" : ""}`, role: "listitem", title: tip(r),
                        dataset: { id: r.id } },
        cb, h("button", { type: "button", class: "open-prediction", "aria-label": `Review prediction: ${tip(r).replace(/\n/g, ", ")}`,
                          onclick: () => review(r) }, h("img", { src: r.thumbnailUri, alt: "", loading: "lazy" })),
        h("span", { class: "hover-tags" }, r.predictions.slice(0, 3).map((p) => h("span", {}, `${p.tagName} ${pct(p.probability)}`))),
        h("small", {}, top ? `${top.tagName} ${pct(top.probability)}` : "—", " · ", when(r.created)));
    }));
    if (!results.length) grid.append(h("p", { class: "empty" }, "No stored predictions for this iteration yet."));
  }
  async function load(append = false) {
    const body = append && token ? token : { orderBy: order.value, iterationId: pick.value, maxCount: 64 };
    const res = await api.post(`/projects/${pid}/predictions/query`, {}, body);
    results = append ? results.concat(res.results) : res.results;
    token = res.token && res.token.continuation ? res.token : null;
    more.hidden = !token;
    if (!append) selected.clear();
    paint();
  }

  // The tags to give each promoted image: chosen in review(), else its predictions above 50%.
  const corrections = new Map();
  function entryFor(r) {
    const c = corrections.get(r.id);
    if (ctx.isDetection) {
      const boxes = c ? c.regions : r.predictions.filter((p) => p.probability >= 0.5)
        .map((p) => ({ tagId: p.tagId, ...p.boundingBox }));
      return { id: r.id, regions: boxes };
    }
    const tags = c ? c.tagIds : r.predictions.filter((p) => p.probability >= 0.5).slice(0, 1).map((p) => p.tagId);
    return { id: r.id, tagIds: tags };
  }
  async function promote(list) {
    const res = await api.post(`/projects/${pid}/images/predictions`, {}, { images: list.map(entryFor) });
    const all = res.images || [];
    const ok = all.filter((x) => x.status === "OK").length;
    const dup = all.filter((x) => x.status === "OKDuplicate").length;
    const bad = all.filter((x) => !(x.status === "OK" || x.status === "OKDuplicate"));
    toast(`${ok} added to the training set` + (dup ? `; ${dup} already in it (tags updated)` : "") +
      (bad.length ? `; ${bad.length} not: ${bad.map((b) => b.status + (b.message ? ` (${b.message})` : "")).join("; ")}` : "."),
      bad.length ? "error" : "ok");
    await ctx.reloadTags();
    await load();
  }
  async function addSelected() {
    if (!selected.size) { toast("Select predictions first.", "error"); return; }
    await promote(results.filter((r) => selected.has(r.id)));
  }

  async function review(r) {
    const body = h("div", { class: "review" });
    const stage = h("div", { class: "stage" }, h("img", { src: r.originalImageUri, alt: "predicted image" }));
    const side = h("div", { class: "editor-side" });
    body.append(stage, side);
    const state = corrections.get(r.id) || (ctx.isDetection
      ? { regions: r.predictions.filter((p) => p.probability >= 0.5).map((p) => ({ tagId: p.tagId, ...p.boundingBox })) }
      : { tagIds: r.predictions.filter((p) => p.probability >= 0.5).slice(0, 1).map((p) => p.tagId) });
    const tagName = (id) => ctx.tags.find((t) => t.id === id)?.name || "?";
    const paintSide = () => {
      if (ctx.isDetection) {
        drawBoxes(stage, state.regions.map((b) => ({ box: b, label: tagName(b.tagId), cls: "predicted" })));
        clear(side, h("h3", {}, "Boxes to add"), h("ul", { class: "review-boxes" }, state.regions.map((b, i) => {
          const sel = h("select", { "aria-label": `Tag of box ${i + 1}` }, ctx.tags.map((t) => h("option", { value: t.id, selected: t.id === b.tagId }, t.name)));
          sel.addEventListener("change", () => { b.tagId = sel.value; paintSide(); });
          return h("li", {}, `Box ${i + 1} `, sel, h("button", { type: "button", "aria-label": `Drop box ${i + 1}`,
            onclick: () => { state.regions.splice(i, 1); paintSide(); } }, "Drop"));
        })));
      } else {
        clear(side, h("h3", {}, "Predicted"), h("ul", {}, r.predictions.map((p) => h("li", {}, `${p.tagName} ${pct(p.probability)}`))),
          h("fieldset", {}, h("legend", {}, "Tags for the training set"), ctx.tags.map((t) => {
            const id = `rv-${r.id}-${t.id}`;
            const cb = h("input", { type: "checkbox", id, checked: state.tagIds.includes(t.id) });
            cb.addEventListener("change", () => {
              state.tagIds = cb.checked ? [...state.tagIds, t.id] : state.tagIds.filter((x) => x !== t.id);
            });
            return h("label", { class: "choice", for: id }, cb, t.name);
          })));
      }
    };
    paintSide();
    const choice = await dialog("Review prediction", body, [["Cancel", null], ["Save tags", "save"], ["Add to training set", "add"]]);
    if (!choice) return;
    corrections.set(r.id, state);
    if (choice === "add") await promote([r]);
  }

  pick.addEventListener("change", () => load().catch((e) => showError(e)));
  order.addEventListener("change", () => load().catch((e) => showError(e)));
  clear(root, toolbar, grid, more);
  await load();
  return null;
}
