// Training Images: tag rail and filters, drag-and-drop upload with per-file results, a virtualised
// thumbnail grid with multi-select (tag, untag, delete), the image editor (tags, boxes, region proposals)
// and Smart Labeler suggestions for untagged images.
import * as api from "./api.js";
import { h, clear, field, toast, showError, dialog, confirm, action, pct } from "./ui.js";
import { boxEditor, drawBoxes } from "./boxes.js";

const PAGE = 256;      // images per GET (the API's maximum take)
const BATCH = 64;      // files per upload (the API's maximum)
const IDS = 64;        // image ids per tag/untag call
const TILE = 168;      // px per tile, gap included
const completedIterations = (ctx) => ctx.iterations.filter((i) => i.status === "Completed");

export async function render(root, ctx) {
  const pid = ctx.projectId;
  const filter = { status: ctx.query.get("filter") === "untagged" ? "Untagged" : "", tagId: ctx.query.get("tag") || "" };
  const selected = new Set();
  let total = 0, items = [], pages = new Map(), generation = 0, suggestions = new Map();
  let lastIndex = null;

  // ---- rail ----
  const rail = h("nav", { class: "rail tag-rail", "aria-label": "Filter by tag" });
  function filterLink(label, count, active, hash) {
    return h("a", { href: hash, class: active ? "active" : "", "aria-current": active ? "true" : null },
      h("span", {}, label), h("span", { class: "count" }, count ?? ""));
  }
  async function renderRail() {
    const [all, untagged] = await Promise.all([api.get(`/projects/${pid}/images/count`),
                                               api.get(`/projects/${pid}/images/untagged/count`)]);
    const base = `#/p/${pid}/images`;
    const newTag = h("input", { type: "text", placeholder: "New tag name", "aria-label": "New tag name", maxlength: 200 });
    const addForm = h("form", { class: "new-tag" }, newTag, h("button", { type: "submit" }, "Add tag"));
    addForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (!newTag.value.trim()) return;
      try {
        await api.post(`/projects/${pid}/tags`, { name: newTag.value.trim() });
        toast(`Tag "${newTag.value.trim()}" added.`, "ok");
        await ctx.reloadTags();
        newTag.value = "";
        renderRail();
        renderToolbar();
        renderUploadTags();
      } catch (err) { showError(err); }
    });
    clear(rail, h("h2", {}, "Tags"),
      filterLink("All images", all, !filter.status && !filter.tagId, base),
      filterLink("Untagged", untagged, filter.status === "Untagged", `${base}?filter=untagged`),
      ctx.tags.map((t) => filterLink(t.name + (t.type === "Negative" ? " (negative)" : ""), t.imageCount,
                                     filter.tagId === t.id, `${base}?tag=${t.id}`)),
      addForm);
  }

  // ---- toolbar ----
  const toolbar = h("div", { class: "toolbar images-toolbar" });
  const countLine = h("span", { class: "muted", "aria-live": "polite" });
  function tagSelect(label) {
    return h("select", { "aria-label": label }, h("option", { value: "" }, label),
      ctx.tags.map((t) => h("option", { value: t.id }, t.name)));
  }
  function renderToolbar() {
    const fileInput = h("input", { type: "file", multiple: true, accept: "image/*", class: "visually-hidden",
                                   id: "add-images-input", "aria-label": "Add images" });
    fileInput.addEventListener("change", () => { upload([...fileInput.files]); fileInput.value = ""; });
    const tagPick = tagSelect("Tag to add");
    const untagPick = tagSelect("Tag to remove");
    const n = selected.size;
    clear(toolbar,
      h("label", { class: "button primary", for: "add-images-input", tabindex: "0", role: "button",
                   onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); fileInput.click(); } } },
        "Add images"), fileInput,
      countLine, h("span", { class: "spacer" }),
      h("span", { class: "selection", "aria-live": "polite" }, n ? `${n} selected` : ""),
      action("Select all loaded", () => { items.forEach((im) => im && selected.add(im.id)); sync(); }),
      action("Clear selection", () => { selected.clear(); sync(); }, { disabled: !n }),
      tagPick, action("Tag selected", () => tagSelected(tagPick.value), { disabled: !n }),
      untagPick, action("Untag selected", () => untagSelected(untagPick.value), { disabled: !n }),
      action("Delete selected", deleteSelected, { class: "danger", disabled: !n }),
      filter.status === "Untagged" && completedIterations(ctx).length
        ? action("Suggest tags", suggestInView, { "data-action": "suggest" }) : null);
  }
  function sync() { renderToolbar(); paint(true); }

  // ---- upload ----
  const uploadTags = new Set(filter.tagId ? [filter.tagId] : []);
  const uploadPanel = h("section", { class: "panel upload", "aria-label": "Upload" });
  const uploadTagsBox = h("div", { class: "drop-hint" });
  const uploadLog = h("div", { class: "upload-log" });
  uploadPanel.append(uploadTagsBox, uploadLog);
  function renderUploadTags() {
    clear(uploadTagsBox, h("strong", {}, "Drop images here"), " or use Add images. Tags for new uploads: ",
      ctx.tags.length ? ctx.tags.map((t) => {
        const id = `up-tag-${t.id}`;
        const cb = h("input", { type: "checkbox", id, checked: uploadTags.has(t.id) });
        cb.addEventListener("change", () => (cb.checked ? uploadTags.add(t.id) : uploadTags.delete(t.id)));
        return h("label", { class: "choice inline", for: id }, cb, t.name);
      }) : h("span", { class: "muted" }, "add a tag in the rail first, or upload untagged"));
  }
  async function upload(files) {
    files = files.filter((f) => f.size !== undefined);
    if (!files.length) return;
    const log = uploadLog;
    const batches = [];
    for (let i = 0; i < files.length; i += BATCH) batches.push(files.slice(i, i + BATCH));
    const summary = h("p", { class: "upload-summary", role: "status" }, `Uploading ${files.length} files…`);
    const failures = h("ul", { class: "upload-failures" });
    const bars = batches.map((b, i) => h("div", { class: "batch" },
      h("label", { for: `batch-${i}` }, `Batch ${i + 1} of ${batches.length} (${b.length} files)`),
      h("progress", { id: `batch-${i}`, max: 100, value: 0 }), h("span", { class: "batch-state muted" }, "waiting")));
    clear(log, summary, bars, failures);
    let ok = 0, bad = 0;
    const tagIds = [...uploadTags];
    await api.pool(batches, 2, async (batch, i) => {
      const form = new FormData();
      batch.forEach((f) => form.append("image", f, f.name));
      const bar = bars[i].querySelector("progress"), state = bars[i].querySelector(".batch-state");
      state.textContent = "sending";
      try {
        // 90% of the bar is the bytes sent; the rest is the service checking and storing them.
        const res = await api.upload(`/projects/${pid}/images`, { tagIds }, form, (f) => {
          bar.value = Math.round(90 * f);
          if (f >= 1) state.textContent = "checking";
        });
        let batchBad = 0;
        for (const r of res.images || []) {
          if (r.status === "OK" || r.status === "OKDuplicate") ok++;
          else {
            batchBad++;
            bad++;
            failures.append(h("li", {}, h("strong", {}, r.sourceUrl || "file"), `: ${r.status}`,
              r.message ? ` — ${r.message}` : ""));
          }
        }
        state.textContent = batchBad ? `done, ${batchBad} failed` : "done";
      } catch (err) {
        bad += batch.length;
        state.textContent = "failed";
        failures.append(h("li", {}, `Batch ${i + 1}: ${err.text || err.message}`));
      }
      bar.value = 100;
      summary.textContent = `${ok} uploaded` + (bad ? `, ${bad} failed` : "") +
        (ok + bad < files.length ? ` (${files.length - ok - bad} to go)` : "");
    });
    summary.className = `upload-summary ${bad ? "error" : "ok"}`;
    await ctx.reloadTags();
    await Promise.all([renderRail(), reload()]);
  }
  const dropTarget = root;
  const onDragOver = (e) => { e.preventDefault(); uploadPanel.classList.add("over"); };
  const onDragLeave = () => uploadPanel.classList.remove("over");
  const onDrop = (e) => {
    e.preventDefault();
    uploadPanel.classList.remove("over");
    upload([...(e.dataTransfer?.files || [])]);
  };
  dropTarget.addEventListener("dragover", onDragOver);
  dropTarget.addEventListener("dragleave", onDragLeave);
  dropTarget.addEventListener("drop", onDrop);

  // ---- virtualised grid ----
  const scroller = h("div", { class: "grid-scroll", tabindex: "-1", role: "grid", "aria-label": "Images" });
  const spacer = h("div", { class: "grid-spacer" });
  scroller.append(spacer);
  let cols = 1, rendered = new Map();
  function queryParams(skip) {
    return { take: PAGE, skip, orderBy: "Newest", taggingStatus: filter.status || undefined,
             tagIds: filter.tagId || undefined };
  }
  async function loadPage(p) {
    if (pages.has(p)) return pages.get(p);
    const gen = generation;
    const pr = api.get(`/projects/${pid}/images`, queryParams(p * PAGE)).then((list) => {
      if (gen !== generation) return;
      list.forEach((im, k) => { items[p * PAGE + k] = im; });
      paint(true);
    }).catch((err) => { pages.delete(p); showError(err); });
    pages.set(p, pr);
    return pr;
  }
  function layout() {
    cols = Math.max(1, Math.floor((scroller.clientWidth - 8) / TILE));
    spacer.style.height = `${Math.ceil(total / cols) * TILE}px`;
  }
  function tileFor(im, i) {
    const checked = selected.has(im.id);
    const tags = (im.tags || []).map((t) => t.tagName).join(", ");
    const cb = h("input", { type: "checkbox", class: "pick", checked, tabindex: "-1",
                            "aria-label": `Select image ${i + 1}` });
    const tile = h("div", { class: `tile${checked ? " selected" : ""}`, role: "gridcell", tabindex: "0",
                            "aria-selected": String(checked), dataset: { index: i, id: im.id },
                            "aria-label": `Image ${i + 1}${tags ? `, tagged ${tags}` : ", untagged"}` },
      cb, h("img", { src: im.thumbnailUri, alt: tags || "untagged image", loading: "lazy", decoding: "async",
                     draggable: "false" }),
      h("span", { class: "tile-tags" }, tags || "Untagged"),
      im.regions ? h("span", { class: "tile-regions badge" }, `${im.regions.length} boxes`) : null);
    const s = suggestions.get(im.id);
    if (s) tile.append(suggestionChips(im, s));
    return tile;
  }
  // The tiles in view plus two rows either side: [first, last).
  function visibleRange() {
    const top = scroller.scrollTop, height = scroller.clientHeight || 600;
    return { first: Math.max(0, Math.floor(top / TILE) - 2) * cols,
             last: Math.min(total, (Math.ceil((top + height) / TILE) + 2) * cols) };
  }
  function paint(force = false) {
    layout();
    const { first, last } = visibleRange();
    for (const [i, el] of rendered) {
      if (i < first || i >= last || force) { el.remove(); rendered.delete(i); }
    }
    for (let i = first; i < last; i++) {
      if (rendered.has(i)) continue;
      const im = items[i];
      if (!im) { loadPage(Math.floor(i / PAGE)); continue; }
      const el = tileFor(im, i);
      el.style.transform = `translate(${(i % cols) * TILE}px, ${Math.floor(i / cols) * TILE}px)`;
      spacer.append(el);
      rendered.set(i, el);
    }
    if (force && document.activeElement === document.body && focusIndex !== null) {
      rendered.get(focusIndex)?.focus();
    }
  }
  let focusIndex = null, ticking = false;
  scroller.addEventListener("scroll", () => {
    if (ticking) return;
    ticking = true;
    requestAnimationFrame(() => { ticking = false; paint(); });
  });
  const onResize = () => paint(true);
  window.addEventListener("resize", onResize);

  function toggle(i, range) {
    const im = items[i];
    if (!im) return;
    if (range && lastIndex !== null) {
      const on = !selected.has(im.id);
      for (let k = Math.min(lastIndex, i); k <= Math.max(lastIndex, i); k++) {
        if (items[k]) on ? selected.add(items[k].id) : selected.delete(items[k].id);
      }
    } else if (selected.has(im.id)) selected.delete(im.id);
    else selected.add(im.id);
    lastIndex = i;
    focusIndex = i;
    sync();
    rendered.get(i)?.focus();
  }
  spacer.addEventListener("click", (e) => {
    const tile = e.target.closest(".tile");
    if (!tile || e.target.closest(".suggestion")) return;
    const i = Number(tile.dataset.index);
    if (e.target.classList.contains("pick") || e.shiftKey || e.ctrlKey || e.metaKey) toggle(i, e.shiftKey);
    else openImage(items[i]);
  });
  spacer.addEventListener("keydown", (e) => {
    const tile = e.target.closest(".tile");
    if (!tile || e.target !== tile) return;
    const i = Number(tile.dataset.index);
    const move = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols }[e.key];
    if (e.key === " ") { e.preventDefault(); toggle(i, e.shiftKey); }
    else if (e.key === "Enter") { e.preventDefault(); openImage(items[i]); }
    else if (move) {
      e.preventDefault();
      const j = Math.min(total - 1, Math.max(0, i + move));
      focusIndex = j;
      const row = Math.floor(j / cols) * TILE;
      if (row < scroller.scrollTop || row + TILE > scroller.scrollTop + scroller.clientHeight) {
        scroller.scrollTop = row - TILE;
        paint();
      }
      rendered.get(j)?.focus();
    }
  });

  async function reload() {
    generation++;
    items = [];
    pages = new Map();
    total = await api.get(`/projects/${pid}/images/count`, { taggingStatus: filter.status || undefined,
                                                              tagIds: filter.tagId || undefined });
    countLine.textContent = `${total.toLocaleString("en-US")} images` +
      (filter.status ? " untagged" : filter.tagId ? ` tagged ${ctx.tags.find((t) => t.id === filter.tagId)?.name || ""}` : "");
    for (const id of [...selected]) if (!total) selected.delete(id);
    if (!total) {
      spacer.style.height = "0px";
      rendered.forEach((el) => el.remove());
      rendered.clear();
      scroller.append(h("p", { class: "empty grid-empty" }, filter.status || filter.tagId
        ? "No images match this filter." : "No images yet: drop some photos here."));
    } else scroller.querySelector(".grid-empty")?.remove();
    await loadPage(0);
    paint(true);
  }

  // ---- bulk actions ----
  const chunks = (arr, n) => Array.from({ length: Math.ceil(arr.length / n) }, (_, i) => arr.slice(i * n, i * n + n));
  async function tagSelected(tagId) {
    if (!tagId) { toast("Choose a tag to apply first.", "error"); return; }
    const ids = [...selected];
    await api.pool(chunks(ids, IDS), 2, (part) => api.post(`/projects/${pid}/images/tags`, {},
      { tags: part.map((imageId) => ({ imageId, tagId })) }));
    toast(`Tagged ${ids.length} images.`, "ok");
    await afterBulk();
  }
  async function untagSelected(tagId) {
    if (!tagId) { toast("Choose the tag to remove first.", "error"); return; }
    const ids = [...selected];
    await api.pool(chunks(ids, IDS), 2, (part) => api.del(`/projects/${pid}/images/tags`,
      { imageIds: part, tagIds: [tagId] }));
    toast(`Removed the tag from ${ids.length} images.`, "ok");
    await afterBulk();
  }
  async function deleteSelected() {
    const ids = [...selected];
    if (!(await confirm(`Delete ${ids.length} images?`, "They leave the training set for good.", "Delete images"))) return;
    await api.pool(chunks(ids, PAGE), 2, (part) => api.del(`/projects/${pid}/images`, { imageIds: part }));
    selected.clear();
    toast(`Deleted ${ids.length} images.`, "ok");
    await afterBulk();
  }
  async function afterBulk() {
    await ctx.reloadTags();
    renderToolbar();
    await Promise.all([renderRail(), reload()]);
  }

  // ---- Smart Labeler ----
  function latest() { return completedIterations(ctx)[0]; }
  async function suggestInView() {
    const it = latest();
    if (!it) { toast("Train the project first: suggestions come from its newest completed iteration.", "error"); return; }
    // The images in view, waiting for their pages when the grid is still loading them (a click right after the
    // count appears must not do nothing).
    layout();
    const { first, last } = visibleRange();
    const wanted = new Set();
    for (let i = first; i < last; i++) wanted.add(Math.floor(i / PAGE));
    await Promise.all([...wanted].map((p) => loadPage(p)));
    const ids = [];
    for (let i = first; i < last && ids.length < 64; i++) {
      const id = items[i]?.id;
      if (id && !suggestions.has(id)) ids.push(id);
    }
    if (!ids.length) { toast("The images in view already show suggestions: scroll to see more.", "info"); return; }
    const res = await api.post(`/projects/${pid}/tagsandregions/suggestions`, { iterationId: it.id, imageIds: ids });
    for (const s of res) suggestions.set(s.id, s);
    paint(true);
    toast(`Suggestions from ${it.name} for ${res.length} images.`, "ok");
  }
  function suggestionChips(im, s) {
    const best = (s.predictions || []).filter((p) => !p.boundingBox).slice(0, 2);
    const box = h("div", { class: "suggestions" });
    if (ctx.isDetection) {
      const n = (s.predictions || []).filter((p) => p.probability >= 0.5).length;
      box.append(h("span", { class: "suggestion" }, `${n} suggested boxes — open to review`));
      return box;
    }
    for (const p of best) {
      box.append(h("span", { class: "suggestion" }, `${p.tagName} ${pct(p.probability)}`,
        h("button", { type: "button", class: "accept", "aria-label": `Accept ${p.tagName} for image`,
                      onclick: async (e) => {
                        e.stopPropagation();
                        try {
                          await api.post(`/projects/${pid}/images/tags`, {}, { tags: [{ imageId: im.id, tagId: p.tagId }] });
                          suggestions.delete(im.id);
                          toast(`Tagged ${p.tagName}.`, "ok");
                          await afterBulk();
                        } catch (err) { showError(err); }
                      } }, "✓"),
        h("button", { type: "button", class: "reject", "aria-label": `Reject ${p.tagName}`,
                      onclick: (e) => { e.stopPropagation(); s.predictions = s.predictions.filter((q) => q !== p);
                                        paint(true); } }, "✗")));
    }
    return box;
  }

  // ---- one image: tags, boxes, proposals, suggestions ----
  async function openImage(im) {
    if (!im) return;
    const [fresh] = await api.get(`/projects/${pid}/images/id`, { imageIds: [im.id] });
    im = fresh || im;
    const tagsById = new Map(ctx.tags.map((t) => [t.id, t]));
    const chips = h("ul", { class: "chips", "aria-label": "Tags of this image" });
    const renderChips = () => clear(chips, (im.tags || []).map((t) => h("li", {}, t.tagName,
      ctx.isDetection ? null : h("button", { type: "button", class: "link", "aria-label": `Remove tag ${t.tagName}`,
        onclick: async () => {
          try {
            await api.del(`/projects/${pid}/images/tags`, { imageIds: [im.id], tagIds: [t.tagId] });
            im.tags = im.tags.filter((x) => x.tagId !== t.tagId);
            renderChips();
            changed = true;
          } catch (err) { showError(err); }
        } }, "×"))));
    let changed = false;
    renderChips();
    const addTag = tagSelect(ctx.isDetection ? "Tag for new boxes" : "Add tag…");
    if (ctx.isDetection && ctx.tags[0]) addTag.value = ctx.tags[0].id;
    const stage = h("div", { class: "stage" }, h("img", { src: im.originalImageUri, alt: "training image", draggable: "false" }));
    const side = h("div", { class: "editor-side" });
    const body = h("div", { class: "image-editor" }, stage, side);
    const status = h("p", { class: "muted", "aria-live": "polite" });
    if (!ctx.isDetection) {
      addTag.addEventListener("change", async () => {
        if (!addTag.value) return;
        try {
          await api.post(`/projects/${pid}/images/tags`, {}, { tags: [{ imageId: im.id, tagId: addTag.value }] });
          const t = tagsById.get(addTag.value);
          im.tags = [...(im.tags || []).filter((x) => x.tagId !== t.id), { tagId: t.id, tagName: t.name }];
          renderChips();
          changed = true;
        } catch (err) { showError(err); }
        addTag.value = "";
      });
      side.append(h("h3", {}, "Tags"), chips, field("Add a tag", addTag));
    } else {
      const regions = (im.regions || []).map((r) => ({ id: r.regionId, tagId: r.tagId, left: r.left, top: r.top,
                                                       width: r.width, height: r.height }));
      const create = async (box, tagId = addTag.value) => {
        if (!tagId) { toast("Choose the tag for new boxes first.", "error"); return null; }
        const res = await api.post(`/projects/${pid}/images/regions`, {},
          { regions: [{ imageId: im.id, tagId, ...box }] });
        const made = (res.created || [])[0];
        if (!made) throw new Error("the region was not created: " + JSON.stringify(res.duplicated || res.exceeded || res));
        changed = true;
        status.textContent = "Box saved.";
        return { id: made.regionId, tagId, left: made.left, top: made.top, width: made.width, height: made.height };
      };
      const editor = boxEditor(stage, regions, {
        labelOf: (r) => tagsById.get(r.tagId)?.name || "?",
        onCreate: (box) => create(box).catch((e) => { showError(e); return null; }),
        onChange: async (r, box) => {
          const made = await create(box, r.tagId);
          await api.del(`/projects/${pid}/images/regions`, { regionIds: [r.id] });
          return made;
        },
        onDelete: async (r) => {
          await api.del(`/projects/${pid}/images/regions`, { regionIds: [r.id] });
          changed = true;
          status.textContent = "Box deleted.";
        },
      });
      const offer = (list, cls, label) => {
        for (const old of stage.querySelectorAll(`.box.${cls}`)) old.remove();
        // Larger boxes first, so every smaller one lies on top of them and stays clickable.
        const area = (p) => p.boundingBox.width * p.boundingBox.height;
        for (const p of [...list].sort((a, b) => area(b) - area(a))) {
          const b = p.boundingBox;
          const el = h("button", { type: "button", class: `box ${cls}`, "aria-label": `${label(p)}: click to add as a box` },
            h("span", { class: "box-label" }, label(p)));
          for (const [k, v] of Object.entries(b)) el.style[k] = `${100 * v}%`;
          el.addEventListener("pointerdown", (e) => e.stopPropagation());
          el.addEventListener("click", async () => {
            const r = await editor.add(b).catch((e) => { showError(e); return null; });
            if (r) el.remove();
          });
          stage.append(el);
        }
      };
      side.append(field("Tag for new boxes", addTag, "Drag on the image to draw a box. Select a box to move it, " +
        "drag a corner to resize, or use arrows / Shift+arrows; Delete removes it."),
        action("Suggest boxes (region proposals)", async () => {
          const res = await api.post(`/projects/${pid}/images/${im.id}/regionproposals`);
          offer((res.proposals || []).slice(0, 12), "proposal", (p) => `proposal ${pct(p.confidence)}`);
          status.textContent = `${Math.min(12, (res.proposals || []).length)} proposals: click one to add it with the chosen tag.`;
        }, { "data-action": "proposals" }));
      if (latest()) {
        side.append(action("Smart Labeler: suggested boxes", async () => {
          const [s] = await api.post(`/projects/${pid}/tagsandregions/suggestions`, { iterationId: latest().id, imageIds: [im.id] });
          const found = (s?.predictions || []).filter((p) => p.boundingBox && p.probability >= 0.3);
          offer(found, "suggested", (p) => `${p.tagName} ${pct(p.probability)}`);
          status.textContent = found.length ? `${found.length} suggested boxes: click to accept (uses the chosen tag).` : "No suggestions above 30%.";
        }));
      }
    }
    if (!ctx.isDetection && latest() && !(im.tags || []).length) {
      const list = h("ul", { class: "suggest-list" });
      side.append(h("h3", {}, "Suggested tags"), list);
      api.post(`/projects/${pid}/tagsandregions/suggestions`, { iterationId: latest().id, imageIds: [im.id] })
        .then(([s]) => clear(list, (s?.predictions || []).slice(0, 3).map((p) => h("li", {}, `${p.tagName} ${pct(p.probability)} `,
          action("Accept", async (btn) => {
            await api.post(`/projects/${pid}/images/tags`, {}, { tags: [{ imageId: im.id, tagId: p.tagId }] });
            im.tags = [...(im.tags || []), { tagId: p.tagId, tagName: p.tagName }];
            renderChips();
            changed = true;
            btn.closest("li").remove();
          }), action("Reject", (btn) => btn.closest("li").remove())))))
        .catch((err) => showError(err, list));
    }
    side.append(status, h("p", { class: "muted" }, `${im.width} × ${im.height} px · added ${new Date(im.created).toLocaleString()}`));
    await dialog("Image", body, [["Close", true]]);
    if (changed) await afterBulk();
  }

  // ---- assemble ----
  renderUploadTags();
  renderToolbar();
  clear(root, h("div", { class: "split images-page" }, rail,
    h("section", { class: "images-main", "aria-label": "Training images" }, toolbar, uploadPanel, scroller)));
  await Promise.all([renderRail(), reload()]);
  return () => {
    window.removeEventListener("resize", onResize);
    generation++;
  };
}
