// Train dialog, the iterations rail (rename, publish / unpublish, default, delete, export, Prediction URL)
// and the Performance tab: metrics at a probability (and overlap) threshold, PR curve and confusion matrix,
// and the held-out images drawn red when the model got them wrong at that threshold.
import * as api from "./api.js";
import { h, clear, field, toast, showError, dialog, confirm, action, pct, when, debounce } from "./ui.js";
import { drawBoxes } from "./boxes.js";

const DEFAULT_KEY = (pid) => `cv.default.${pid}`;
const BADGE = { Completed: "ok", Failed: "bad", Queued: "run", Training: "run" };

// The default iteration: the API has no field for it, so the browser keeps the choice (Quick Test and
// Predictions preselect it); without one, the newest Completed iteration.
export function defaultIteration(ctx) {
  const done = ctx.iterations.filter((i) => i.status === "Completed");
  const chosen = localStorage.getItem(DEFAULT_KEY(ctx.projectId));
  return done.find((i) => i.id === chosen) || done[0] || null;
}

// A select of the Completed iterations, the default preselected.
export function iterationSelect(ctx, chosenId) {
  const done = ctx.iterations.filter((i) => i.status === "Completed");
  const def = defaultIteration(ctx);
  return h("select", { "aria-label": "Iteration" }, done.map((i) => h("option", {
    value: i.id, selected: i.id === (chosenId || def?.id) }, i.name + (i.publishName ? ` (published as ${i.publishName})` : ""))));
}

// ---- train -----------------------------------------------------------------------------------------------
export async function openTrainDialog(ctx) {
  const quickId = "train-quick", advId = "train-adv";
  const quick = h("input", { type: "radio", name: "train-type", id: quickId, value: "Regular", checked: true });
  const adv = h("input", { type: "radio", name: "train-type", id: advId, value: "Advanced" });
  const budget = h("input", { type: "number", min: 1, max: 96, value: 1, step: 1 });
  const problem = h("p", { class: "error", role: "alert" });
  const body = h("div", {},
    h("fieldset", {}, h("legend", {}, "Training type"),
      h("label", { class: "choice", for: quickId }, quick, "Quick training — fast, good for checking the dataset"),
      h("label", { class: "choice", for: advId }, adv, "Advanced training — searches recipes for a time budget")),
    field("Training budget (hours, Advanced only)", budget, "Advanced training stops early when nothing improves."),
    problem);
  for (;;) {
    const ok = await dialog("Choose a training type", body, [["Cancel", null], ["Train", true]]);
    if (!ok) return null;
    try {
      const it = await api.post(`/projects/${ctx.projectId}/train`, {
        trainingType: adv.checked ? "Advanced" : "Regular",
        reservedBudgetInHours: adv.checked ? Number(budget.value) : undefined });
      toast(`${it.name} queued for training.`, "ok");
      await ctx.reloadIterations();
      ctx.navigate(`#/p/${ctx.projectId}/performance/${it.id}`);
      return it;
    } catch (err) {
      problem.textContent = explainTraining(err);
    }
  }
}

function explainTraining(err) {
  const words = {
    BadRequestNotEnoughImagesPerTag: "Each tag needs more images before training (at least 5 for classification, 15 for detection).",
    BadRequestTrainingNotNeeded: "Nothing changed since the last training: add or retag images first.",
    BadRequestTrainingAlreadyInProgress: "A training of this project is already running.",
    BadRequestWorkspaceCannotBeModified: "The project is busy.",
  };
  return words[err.code] ? `${words[err.code]} (${err.code}: ${err.message})` : (err.text || String(err.message));
}

// ---- performance page ------------------------------------------------------------------------------------
export async function render(root, ctx) {
  let timers = [];
  const stop = () => { timers.forEach(clearTimeout); timers = []; };
  await ctx.reloadIterations();
  const its = ctx.iterations;
  if (!its.length) {
    clear(root, h("div", { class: "empty" }, h("p", {}, "No iterations yet."),
      h("p", {}, "Upload and tag images, then press Train.")));
    return stop;
  }
  const chosen = its.find((i) => i.id === ctx.params[0]) || its[0];
  const rail = h("nav", { class: "rail iterations-rail", "aria-label": "Iterations" });
  const content = h("section", { class: "performance", "aria-label": "Iteration performance" });
  clear(root, h("div", { class: "split" }, rail, content));
  renderRail(rail, ctx, chosen);
  if (chosen.status === "Completed") await renderPerformance(content, ctx, chosen, timers);
  else renderProgress(content, ctx, chosen, timers, rail);
  return stop;
}

function renderRail(rail, ctx, chosen) {
  const def = defaultIteration(ctx);
  clear(rail, h("h2", {}, "Iterations"), h("ul", { class: "iterations" }, ctx.iterations.map((it) =>
    h("li", { class: it.id === chosen.id ? "active" : "" },
      h("a", { href: `#/p/${ctx.projectId}/performance/${it.id}`, "aria-current": it.id === chosen.id ? "page" : null },
        h("strong", {}, it.name), " ", h("span", { class: `badge ${BADGE[it.status] || ""}` }, it.status),
        def && def.id === it.id ? h("span", { class: "badge default" }, "default") : null,
        it.publishName ? h("span", { class: "badge ok" }, `published: ${it.publishName}`) : null,
        h("br"), h("small", { class: "muted" }, it.trainedAt ? `trained ${when(it.trainedAt)}` : `created ${when(it.created)}`,
          it.trainingType === "Advanced" ? " · advanced" : ""))))));
}

function renderProgress(content, ctx, it, timers, rail) {
  const line = h("p", { class: "train-status", role: "status" });
  const show = (x) => {
    if (x.status === "Failed") {
      clear(content, h("h2", {}, `${x.name} failed`),
        h("p", { class: "error", role: "alert" }, x.trainingErrorDetails || "The training failed without a reason."),
        iterationActions(ctx, x));
      return;
    }
    clear(line, h("span", { class: `badge ${BADGE[x.status] || ""}` }, x.status), " ",
      x.status === "Queued" ? "Waiting for the trainer…" : "Training… this page updates by itself.");
  };
  clear(content, h("h2", {}, it.name), line, h("progress", { "aria-label": "Training" }), iterationActions(ctx, it));
  show(it);
  const poll = async () => {
    try {
      const x = await api.get(`/projects/${ctx.projectId}/iterations/${it.id}`);
      if (x.status === "Completed" || x.status === "Failed") {
        await ctx.reloadIterations();
        renderRail(rail, ctx, x);
        if (x.status === "Completed") { toast(`${x.name} finished training.`, "ok"); await renderPerformance(content, ctx, x, timers); }
        else show(x);
        return;
      }
      show(x);
    } catch (err) { showError(err); }
    timers.push(setTimeout(poll, 1500));
  };
  timers.push(setTimeout(poll, 1000));
}

async function renderPerformance(content, ctx, it, timers) {
  const pid = ctx.projectId;
  const threshold = h("input", { type: "range", min: 0, max: 100, step: 1, value: 50 });
  const overlap = h("input", { type: "range", min: 0, max: 100, step: 1, value: 30 });
  const thresholdOut = h("output", {}, "50%");
  const overlapOut = h("output", {}, "30%");
  const summary = h("div", { class: "metrics", "aria-live": "polite" });
  const table = h("div", { class: "per-tag" });
  const gallery = h("div", { class: "heldout" });
  const onlyWrong = h("input", { type: "checkbox", id: `only-wrong-${it.id}` });
  const reports = h("div", { class: "reports" });
  const advice = h("section", { class: "advice", "aria-label": "How to improve this model" });
  clear(content,
    h("div", { class: "toolbar" }, h("h2", {}, it.name), h("span", { class: "spacer" }), iterationActions(ctx, it)),
    h("div", { class: "sliders panel" },
      h("div", { class: "field slider" }, h("label", { for: threshold.id = `thr-${it.id}` }, "Probability threshold"),
        threshold, thresholdOut, h("small", { class: "hint" }, "The minimum probability for a prediction to count.")),
      ctx.isDetection ? h("div", { class: "field slider" }, h("label", { for: overlap.id = `ovl-${it.id}` }, "Overlap threshold"),
        overlap, overlapOut, h("small", { class: "hint" }, "The minimum IoU for a predicted box to match a labelled one.")) : null),
    summary, table, advice, reports,
    h("div", { class: "toolbar" }, h("h3", {}, "Held-out images"), h("span", { class: "spacer" }),
      h("label", { class: "choice", for: onlyWrong.id }, onlyWrong, "Show only the wrong ones")),
    h("p", { class: "muted" }, "How each training image was predicted while it was held out (cross-validation). ",
      "A red border marks an image the model got wrong at this threshold."),
    gallery);

  let heldout = [];
  let seq = 0;
  const update = async () => {
    const t = Number(threshold.value) / 100, o = Number(overlap.value) / 100;
    thresholdOut.textContent = `${threshold.value}%`;
    overlapOut.textContent = `${overlap.value}%`;
    const mine = ++seq;
    try {
      const perf = await api.get(`/projects/${pid}/iterations/${it.id}/performance`,
        { threshold: t, overlapThreshold: ctx.isDetection ? o : undefined });
      if (mine !== seq) return;
      const ap = ctx.isDetection ? "mAP" : "AP";
      clear(summary,
        metric("Precision", perf.precision, "metric-precision"),
        metric("Recall", perf.recall, "metric-recall"),
        metric(ap, perf.averagePrecision, "metric-ap"));
      clear(table, h("table", { class: "data" },
        h("thead", {}, h("tr", {}, h("th", {}, "Tag"), h("th", { class: "num" }, "Precision"),
          h("th", { class: "num" }, "Recall"), h("th", { class: "num" }, ap), h("th", { class: "num" }, "Images"))),
        h("tbody", {}, (perf.perTagPerformance || []).map((p) => h("tr", { dataset: { tag: p.id } },
          h("td", {}, p.name), h("td", { class: "num" }, pct(p.precision)), h("td", { class: "num" }, pct(p.recall)),
          h("td", { class: "num" }, pct(p.averagePrecision)),
          h("td", { class: "num" }, ctx.tags.find((x) => x.id === p.id)?.imageCount ?? ""))))));
      paintHeldout(t, o);
    } catch (err) { showError(err, summary); }
  };
  const later = debounce(update, 150);
  threshold.addEventListener("input", () => { thresholdOut.textContent = `${threshold.value}%`; later(); });
  overlap.addEventListener("input", () => { overlapOut.textContent = `${overlap.value}%`; later(); });
  onlyWrong.addEventListener("change", () => paintHeldout(Number(threshold.value) / 100, Number(overlap.value) / 100));

  function paintHeldout(t, o) {
    const tiles = heldout.map((im) => {
      const wrong = isWrong(im, t, o, ctx.isDetection);
      if (onlyWrong.checked && !wrong) return null;
      const shown = (im.predictions || []).filter((p) => p.probability >= t);
      const tip = "labelled: " + ((im.tags || []).map((x) => x.tagName).join(", ") || "none") + "\npredicted: " +
        ((ctx.isDetection ? shown : im.predictions || []).slice(0, 5).map((p) => `${p.tagName} ${pct(p.probability)}`).join(", ") || "nothing");
      const stage = h("div", { class: "stage" }, h("img", { src: im.thumbnailUri, alt: tip, loading: "lazy" }));
      if (ctx.isDetection) {
        drawBoxes(stage, [...(im.regions || []).map((r) => ({ box: r, label: r.tagName, cls: "truth" })),
          ...shown.map((p) => ({ box: p.boundingBox, label: `${p.tagName} ${pct(p.probability)}`, cls: "predicted" }))]);
      }
      return h("figure", { class: `heldout-image ${wrong ? "wrong" : "right"}`, title: tip, tabindex: "0",
                           dataset: { id: im.id, wrong: String(wrong) } },
        stage, h("figcaption", {}, (im.predictions || [])[0] && !ctx.isDetection
          ? `${im.predictions[0].tagName} ${pct(im.predictions[0].probability)}` : `${shown.length} boxes`));
    }).filter(Boolean);
    const wrongCount = heldout.filter((im) => isWrong(im, t, o, ctx.isDetection)).length;
    clear(gallery, h("p", { class: "wrong-count" }, `${wrongCount} of ${heldout.length} held-out images wrong at ${pct(t)}`),
      h("div", { class: "heldout-grid" }, tiles));
  }

  // Report images need the key: fetched as blobs, shown from object URLs.
  for (const [name, alt] of [["pr_curves.png", "Precision-recall curve per tag"], ["confusion_matrix.png", "Confusion matrix"]]) {
    api.request("GET", `/projects/${pid}/artifacts`, { params: { path: `models/${it.id}/report/${name}` }, raw: true })
      .then((res) => res.blob())
      .then((blob) => reports.append(h("figure", {}, h("img", { src: URL.createObjectURL(blob), alt }), h("figcaption", {}, alt))))
      .catch(() => { /* no such report for this iteration (older or detection): nothing to show */ });
  }
  const count = await api.get(`/projects/${pid}/iterations/${it.id}/performance/images/count`).catch(() => 0);
  const pages = [];
  for (let skip = 0; skip < Math.min(count, 512); skip += 256) pages.push(skip);
  heldout = (await api.pool(pages, 2, (skip) => api.get(`/projects/${pid}/iterations/${it.id}/performance/images`,
    { take: 256, skip }))).flat();
  await update();
  renderAdvice(advice, pid, it, heldout);
}

// The model doctor's findings (GET .../iterations/{id}/advice), most severe first, with the images they name.
async function renderAdvice(root, pid, it, heldout) {
  let found;
  try {
    found = await api.get(`/projects/${pid}/iterations/${it.id}/advice`);
  } catch (err) {
    if (err.status === 404) clear(root, h("h3", {}, "How to improve this model"), h("p", { class: "muted" }, err.text || err.message));
    else showError(err, root);
    return;
  }
  const thumbs = new Map(heldout.map((im) => [im.id, im.thumbnailUri]));
  const items = (found.findings || []).map((f) => h("li", { class: `finding ${f.severity}`, dataset: { kind: f.kind } },
    h("span", { class: `badge ${f.severity === "high" ? "bad" : f.severity === "medium" ? "run" : ""}` }, f.severity),
    " ", h("span", { class: "finding-text" }, f.message),
    (f.image_ids || []).some((id) => thumbs.has(id)) ? h("div", { class: "finding-images" },
      f.image_ids.filter((id) => thumbs.has(id)).slice(0, 8).map((id) =>
        h("img", { src: thumbs.get(id), alt: `image ${id}`, title: id, loading: "lazy", dataset: { id } }))) : null,
    (f.prediction_ids || []).length ? h("p", {}, h("a", { href: `#/p/${pid}/predictions` },
      `Review the ${f.prediction_ids.length} stored predictions on the Predictions page`)) : null));
  clear(root, h("h3", {}, "How to improve this model"),
    items.length ? h("ol", { class: "findings" }, items) : h("p", {}, "The model doctor found no problem in the data."),
    h("p", { class: "muted" }, `Checked ${found.images} images in ${Number(found.seconds).toFixed(1)} s.`));
}

function metric(label, value, cls) {
  return h("div", { class: `metric ${cls}` }, h("span", { class: "metric-value" }, pct(value)), h("span", { class: "metric-label" }, label));
}

function iou(a, b) {
  const x1 = Math.max(a.left, b.left), y1 = Math.max(a.top, b.top);
  const x2 = Math.min(a.left + a.width, b.left + b.width), y2 = Math.min(a.top + a.height, b.top + b.height);
  const inter = Math.max(0, x2 - x1) * Math.max(0, y2 - y1);
  const union = a.width * a.height + b.width * b.height - inter;
  return union > 0 ? inter / union : 0;
}

// Wrong at this threshold: classification - a labelled tag below it or another tag at or above it;
// detection - a labelled box that no prediction of its tag matches (IoU >= overlap), or a prediction that
// matches no labelled box of its tag.
export function isWrong(im, t, o, detection) {
  const preds = (im.predictions || []).filter((p) => p.probability >= t);
  if (!detection) {
    const truth = new Set((im.tags || []).map((x) => x.tagId));
    const got = new Set(preds.map((p) => p.tagId));
    return [...truth].some((id) => !got.has(id)) || [...got].some((id) => !truth.has(id));
  }
  const regions = im.regions || [];
  const used = new Set();
  for (const p of preds.sort((a, b) => b.probability - a.probability)) {
    const k = regions.findIndex((r, i) => !used.has(i) && r.tagId === p.tagId && iou(r, p.boundingBox) >= o);
    if (k < 0) return true;
    used.add(k);
  }
  return used.size < regions.length;
}

// ---- iteration actions -----------------------------------------------------------------------------------
function iterationActions(ctx, it) {
  const pid = ctx.projectId;
  const refresh = async (toId = it.id) => { await ctx.reloadIterations(); ctx.navigate(`#/p/${pid}/performance/${toId}`); };
  const done = it.status === "Completed";
  const def = defaultIteration(ctx);
  return h("div", { class: "iteration-actions toolbar" },
    action("Rename", async () => {
      const name = h("input", { type: "text", value: it.name, required: true, maxlength: 200 });
      if (!(await dialog(`Rename ${it.name}`, field("Iteration name", name), [["Cancel", null], ["Rename", true]]))) return;
      await api.patch(`/projects/${pid}/iterations/${it.id}`, { name: name.value.trim() });
      toast("Renamed.", "ok");
      await refresh();
    }),
    done && !it.publishName ? action("Publish", async () => {
      const name = h("input", { type: "text", value: it.name.replace(/\s+/g, ""), required: true, maxlength: 200 });
      if (!(await dialog(`Publish ${it.name}`, h("div", {}, field("Model name", name,
        "The prediction URL uses this name; publishing another iteration under it later moves the URL.")),
      [["Cancel", null], ["Publish", true]]))) return;
      await api.post(`/projects/${pid}/iterations/${it.id}/publish`, { publishName: name.value.trim(), overwrite: true });
      toast(`Published as ${name.value.trim()}.`, "ok");
      await refresh();
    }, { class: "primary" }) : null,
    it.publishName ? action("Unpublish", async () => {
      if (!(await confirm(`Unpublish ${it.publishName}?`, "Calls to its prediction URL stop working.", "Unpublish"))) return;
      await api.del(`/projects/${pid}/iterations/${it.id}/publish`);
      toast("Unpublished.", "ok");
      await refresh();
    }) : null,
    it.publishName ? action("Prediction URL", () => openPredictionUrl(ctx, it)) : null,
    done && (!def || def.id !== it.id) ? action("Make default", async () => {
      localStorage.setItem(DEFAULT_KEY(pid), it.id);
      toast(`${it.name} is the default iteration (Quick Test and Predictions start with it).`, "ok");
      await refresh();
    }) : null,
    done && it.exportable ? action("Export", () => openExport(ctx, it)) : null,
    done && !it.exportable ? h("span", { class: "muted export-note" },
      "Export needs a compact domain: choose one in Settings and train again.") : null,
    action("Delete", async () => {
      if (!(await confirm(`Delete ${it.name}?`, "Its model, evaluation and exports are removed.", "Delete iteration"))) return;
      await api.del(`/projects/${pid}/iterations/${it.id}`);
      if (localStorage.getItem(DEFAULT_KEY(pid)) === it.id) localStorage.removeItem(DEFAULT_KEY(pid));
      toast(`${it.name} deleted.`, "ok");
      const left = await ctx.reloadIterations();
      ctx.navigate(`#/p/${pid}/performance${left[0] ? `/${left[0].id}` : ""}`);
    }, { class: "danger" }));
}

// What the iteration's exportableTo may offer (a detector's leaves TensorFlow out), as platform|flavor.
const EXPORT_CHOICES = [
  ["ONNX|ONNX12", "ONNX (float)"],
  ["ONNX|ONNXInt8", "ONNX int8 (smaller, for edge devices)"],
  ["DockerFile|Linux", "Docker container, Linux x86-64 (edge prediction server)"],
  ["DockerFile|ARM", "Docker container, ARM64 (Raspberry Pi, Jetson)"],
  ["OpenVino|", "OpenVINO IR (Intel CPUs, GPUs, NPUs)"],
  ["TensorFlow|TensorFlowNormal", "TensorFlow SavedModel"],
  ["TensorFlow|TensorFlowLite", "TensorFlow Lite (Android, iOS, LiteRT)"],
];

async function openExport(ctx, it) {
  const base = `/projects/${ctx.projectId}/iterations/${it.id}/export`;
  const list = h("ul", { class: "exports", "aria-live": "polite" });
  const offered = new Set(it.exportableTo || []);
  const flavor = h("select", { "aria-label": "Export flavour" }, EXPORT_CHOICES
    .filter(([value]) => offered.has(value.split("|")[0]))
    .map(([value, label]) => h("option", { value }, label)));
  let timer = null;
  const refresh = async () => {
    const exports = await api.get(base);
    clear(list, exports.length ? exports.map((e) => h("li", {}, `${e.platform} ${e.flavor || ""}: `,
      h("span", { class: `badge ${e.status === "Done" ? "ok" : e.status === "Failed" ? "bad" : "run"}` }, e.status), " ",
      e.downloadUri ? h("a", { href: e.downloadUri, download: `${it.name}-${e.flavor || e.platform}.zip` }, "Download") : null))
      : h("li", { class: "muted" }, "No exports yet."));
    if (exports.some((e) => e.status === "Exporting")) timer = setTimeout(refresh, 1500);
  };
  const body = h("div", {}, h("p", {}, "An export is a zip with the model, its labels and settings and a README: ONNX to embed in an app, or a Docker container that answers like the Prediction API."),
    h("div", { class: "toolbar" }, flavor, action("Export", async () => {
      const [platform, flavour] = flavor.value.split("|");
      await api.post(base, flavour ? { platform, flavor: flavour } : { platform });
      await refresh();
    }, { class: "primary", "data-action": "start-export" })), list);
  refresh().catch((err) => showError(err, list));
  await dialog(`Export ${it.name}`, body, [["Close", true]]);
  clearTimeout(timer);
}

// ---- Prediction URL --------------------------------------------------------------------------------------
export function predictionUrls(ctx, it, origin = location.origin) {
  const kind = ctx.isDetection ? "detect" : "classify";
  const base = `${origin}/customvision/v3.0/Prediction/${ctx.projectId}/${kind}/iterations/${encodeURIComponent(it.publishName)}`;
  return { image: `${base}/image`, url: `${base}/url`, kind };
}

async function openPredictionUrl(ctx, it) {
  const urls = predictionUrls(ctx, it);
  const key = api.session.predictionKey || "<Prediction-Key>";
  const method = ctx.isDetection ? "detect_image" : "classify_image";
  const snippets = [
    ["If you have an image URL", `curl -X POST "${urls.url}" \\\n  -H "Prediction-Key: ${key}" \\\n  -H "Content-Type: application/json" \\\n  -d '{"Url": "https://example.com/image.jpg"}'`],
    ["If you have an image file", `curl -X POST "${urls.image}" \\\n  -H "Prediction-Key: ${key}" \\\n  -H "Content-Type: application/octet-stream" \\\n  --data-binary @image.jpg`],
    ["Python (requests)", `import requests\n\nwith open("image.jpg", "rb") as f:\n    reply = requests.post("${urls.image}",\n                          headers={"Prediction-Key": "${key}", "Content-Type": "application/octet-stream"},\n                          data=f.read())\nfor p in reply.json()["predictions"]:\n    print(p["tagName"], round(p["probability"], 3)${ctx.isDetection ? ', p["boundingBox"]' : ""})`],
    ["Python (Custom Vision SDK)", `from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient\nfrom msrest.authentication import ApiKeyCredentials\n\npredictor = CustomVisionPredictionClient("${location.origin}",\n    ApiKeyCredentials(in_headers={"Prediction-key": "${key}"}))\nwith open("image.jpg", "rb") as f:\n    result = predictor.${method}("${ctx.projectId}", "${it.publishName}", f.read())\nfor p in result.predictions:\n    print(p.tag_name, p.probability)`],
  ];
  const body = h("div", { class: "prediction-url" },
    h("p", {}, `Published as `, h("strong", {}, it.publishName), `. Send the `, h("code", {}, "Prediction-Key"),
      " header with every call", api.session.predictionKey ? " (your key is filled in below)." : "."),
    h("dl", { class: "facts" },
      h("dt", {}, "Image URL"), h("dd", {}, h("code", { class: "endpoint-url" }, urls.url)),
      h("dt", {}, "Image file"), h("dd", {}, h("code", { class: "endpoint-image" }, urls.image)),
      h("dt", {}, "Headers"), h("dd", {}, h("code", {}, "Prediction-Key: <key>"), " and ",
        h("code", {}, "Content-Type: application/json"), " (URL) or ", h("code", {}, "application/octet-stream"), " (file)")),
    snippets.map(([title, code]) => {
      const pre = h("pre", { class: "code", tabindex: "0" }, code);
      return h("section", {}, h("div", { class: "toolbar" }, h("h3", {}, title), h("span", { class: "spacer" }),
        action("Copy", async () => {
          try { await navigator.clipboard.writeText(code); toast("Copied.", "ok"); }
          catch { const r = document.createRange(); r.selectNodeContents(pre); getSelection().removeAllRanges(); getSelection().addRange(r);
                  toast("Selected: press Ctrl+C to copy.", "info"); }
        }, { "aria-label": `Copy ${title}` })), pre);
    }));
  await dialog("How to use the Prediction API", body, [["Close", true]]);
}
