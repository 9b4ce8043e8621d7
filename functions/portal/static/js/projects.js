// Projects: the list (first page after sign-in), the New project dialog, and a project's Settings tab.
import * as api from "./api.js";
import { h, clear, field, toast, showError, dialog, confirm, action, when } from "./ui.js";

const TYPES = [
  ["Classification", "Multilabel", "Classification · Multilabel (several tags per image)"],
  ["Classification", "Multiclass", "Classification · Multiclass (one tag per image)"],
  ["ObjectDetection", "", "Object Detection (boxes around objects)"],
];

function domainLabel(d) {
  return d.exportable ? `${d.name} — exportable (${(d.exportablePlatforms || []).join(", ")})` : d.name;
}

// A <select> of the domains of one type; keeps the chosen one if it is of that type.
function domainSelect(all, type, chosen) {
  const sel = h("select", { required: true });
  for (const d of all.filter((x) => x.type === type && x.enabled !== false)) {
    sel.append(h("option", { value: d.id, selected: d.id === chosen }, domainLabel(d)));
  }
  return sel;
}

function typeFieldset(name, value, onChange, disabledTypes = []) {
  const fs = h("fieldset", {}, h("legend", {}, "Project type"));
  TYPES.forEach(([type, ctype, label], i) => {
    const id = `${name}-${i}`;
    const input = h("input", { type: "radio", name, id, value: `${type}|${ctype}`, checked: value === `${type}|${ctype}`,
                               disabled: disabledTypes.includes(type) });
    input.addEventListener("change", () => onChange(type, ctype));
    fs.append(h("label", { class: "choice", for: id }, input, label));
  });
  return fs;
}

export async function renderList(root, { navigate, domains }) {
  const list = h("div", { class: "cards", "aria-live": "polite" }, h("p", { class: "loading" }, "Loading projects…"));
  const newBtn = action("New project", () => openCreate(navigate, domains), { class: "primary", "data-action": "new-project" });
  clear(root, h("div", { class: "toolbar" }, h("h1", {}, "Projects"), h("span", { class: "spacer" }), newBtn), list);
  let projects;
  try {
    projects = await api.get("/projects");
  } catch (err) {
    if (err.status !== 401) showError(err, list);
    return;
  }
  if (!projects.length) {
    clear(list, h("div", { class: "empty" }, h("p", {}, "No projects yet."),
      h("p", {}, "Create one, upload a few photos per tag, and train.")));
    performance.mark("cv:projects-listed");
    return;
  }
  projects.sort((a, b) => (b.lastModified || "").localeCompare(a.lastModified || ""));
  let all = [];
  domains().then((d) => { all = d; fillDomains(); }).catch(() => {});
  const domainSpans = [];
  clear(list, projects.map((p) => {
    const dom = h("span", {}, "");
    domainSpans.push([dom, p]);
    return h("article", { class: "card", "data-project": p.id },
      h("h2", {}, h("a", { class: "open", href: `#/p/${p.id}/images` }, p.name)),
      p.description ? h("p", {}, p.description) : null,
      h("div", { class: "meta" }, dom, " · ", p.settings.classificationType || "", " · modified ", when(p.lastModified)),
      p.status && p.status !== "Succeeded" ? h("span", { class: "badge run" }, p.status) : null);
  }));
  performance.mark("cv:projects-listed"); // benchmarks/portal.py measures first paint of the list to here
  function fillDomains() {
    for (const [span, p] of domainSpans) {
      const d = all.find((x) => x.id === p.settings.domainId);
      if (d) span.textContent = d.type === "ObjectDetection" ? `Object Detection, ${d.name}` : d.name;
    }
  }
}

async function openCreate(navigate, domains) {
  const all = await domains();
  let type = "Classification", ctype = "Multilabel";
  const name = h("input", { type: "text", required: true, maxlength: 200, autocomplete: "off" });
  const description = h("textarea", { maxlength: 2000 });
  const domainHolder = h("div");
  const renderDomain = () => clear(domainHolder, field("Domain", domainSelect(all, type, null),
    "General suits most photos; compact domains can be exported to run offline."));
  renderDomain();
  const problem = h("p", { class: "error", role: "alert" });
  const body = h("div", {}, field("Name", name), field("Description", description),
    typeFieldset("new-type", `${type}|${ctype}`, (t, c) => { type = t; ctype = c; renderDomain(); }),
    domainHolder, problem);
  // The dialog stays open until the project exists or the user cancels, so a bad name can be fixed in place.
  for (;;) {
    const ok = await dialog("New project", body, [["Cancel", null], ["Create project", true]]);
    if (!ok) return;
    try {
      const created = await api.post("/projects", {
        name: name.value.trim(), description: description.value.trim(),
        domainId: domainHolder.querySelector("select").value,
        classificationType: type === "Classification" ? ctype : undefined });
      toast(`Project "${created.name}" created.`, "ok");
      navigate(`#/p/${created.id}/images`);
      return;
    } catch (err) {
      problem.textContent = err.text || String(err.message);
    }
  }
}

export async function renderSettings(root, ctx) {
  const p = ctx.project;
  const type = ctx.domain.type;
  let ctype = p.settings.classificationType || "Multiclass";
  const name = h("input", { type: "text", value: p.name, required: true, maxlength: 200 });
  const description = h("textarea", { maxlength: 2000 }, p.description || "");
  const domain = domainSelect(ctx.domains, type, p.settings.domainId);
  const problem = h("p", { class: "error", role: "alert" });
  const negative = h("input", { type: "checkbox", id: "set-negative", checked: !!p.settings.useNegativeSet });
  const containerUri = h("input", { type: "url", value: p.settings.exportModelContainerUri || "", maxlength: 2048,
                                    placeholder: "https://account.blob.core.windows.net/container" });
  const queueUri = h("input", { type: "url", value: p.settings.notificationQueueUri || "", maxlength: 2048,
                                placeholder: "https://account.queue.core.windows.net/queue" });
  const form = h("form", { class: "panel", "aria-labelledby": "settings-title" },
    h("h2", { id: "settings-title" }, "Settings"),
    field("Name", name), field("Description", description),
    type === "Classification"
      ? typeFieldset("set-type", `Classification|${ctype}`, (_t, c) => { ctype = c; }, ["ObjectDetection"])
      : h("p", { class: "muted" }, "Object Detection project (the project type cannot change to classification)."),
    field("Domain", domain, "Changing the domain applies to the next training."),
    h("label", { class: "choice", for: "set-negative" }, negative,
      "Learn a negative class from images with no tag"),
    h("fieldset", {}, h("legend", {}, "Storage integration"),
      field("Export container URI", containerUri, "Finished exports are copied here as {project}-{iteration}.{platform}."),
      field("Notification queue URI", queueUri, "Training and export results arrive here as Custom Vision's queue messages. Leave empty for none.")),
    problem,
    h("div", { class: "toolbar" }, h("button", { type: "submit", class: "primary" }, "Save changes")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    problem.textContent = "";
    const btn = form.querySelector("button[type=submit]");
    btn.disabled = true;
    try {
      await api.patch(`/projects/${p.id}`, {
        name: name.value.trim(), description: description.value.trim(),
        settings: { domainId: domain.value, classificationType: type === "Classification" ? ctype : undefined,
                    useNegativeSet: negative.checked, exportModelContainerUri: containerUri.value.trim(),
                    notificationQueueUri: queueUri.value.trim() } });
      await ctx.reloadProject();
      ctx.domain = ctx.domains.find((d) => d.id === ctx.project.settings.domainId) || ctx.domain;
      toast("Settings saved.", "ok");
      ctx.navigate(`#/p/${p.id}/settings`);
    } catch (err) {
      problem.textContent = err.text || String(err.message);
    } finally {
      btn.disabled = false;
    }
  });

  const danger = h("section", { class: "panel danger-zone", "aria-labelledby": "danger-title" },
    h("h2", { id: "danger-title" }, "Delete project"),
    h("p", {}, "Deletes the project with all its images, tags, iterations, exports and stored predictions."),
    action("Delete project", async () => {
      const ok = await confirm(`Delete "${p.name}"?`,
        "This cannot be undone. Published prediction endpoints of this project stop working.", "Delete project");
      if (!ok) return;
      await api.del(`/projects/${p.id}`);
      ctx.forget();
      toast(`Project "${p.name}" deleted.`, "ok");
      ctx.navigate("#/");
    }, { class: "danger", "data-action": "delete-project" }));
  const info = h("section", { class: "panel" }, h("h2", {}, "Project"),
    h("dl", { class: "facts" },
      h("dt", {}, "Project ID"), h("dd", {}, h("code", {}, p.id)),
      h("dt", {}, "Created"), h("dd", {}, when(p.created)),
      h("dt", {}, "Training endpoint"), h("dd", {}, h("code", {}, location.origin + api.trainingBase))));
  clear(root, h("div", { class: "settings-grid" }, form, h("div", {}, info, danger)));
}
