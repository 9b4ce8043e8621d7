// The only way the portal talks to the service: the public Training and Prediction REST API, same origin.
// The training key lives in sessionStorage (this browser tab's session), never in localStorage or a cookie.

const TRAINING = "/customvision/v3.4-preview/training";
const PREDICTION = "/customvision/v3.1/prediction";
const KEY = "cv.trainingKey";
const PKEY = "cv.predictionKey";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  // One line a person can act on: the API's own code and message, never a stack trace.
  get text() {
    return this.code ? `${this.message} (${this.code})` : this.message;
  }
}

export const session = {
  get key() { return sessionStorage.getItem(KEY) || ""; },
  set key(v) { v ? sessionStorage.setItem(KEY, v) : sessionStorage.removeItem(KEY); },
  get predictionKey() { return sessionStorage.getItem(PKEY) || ""; },
  set predictionKey(v) { v ? sessionStorage.setItem(PKEY, v) : sessionStorage.removeItem(PKEY); },
};

let onUnauthorized = () => {};
export function whenUnauthorized(fn) { onUnauthorized = fn; }

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === "") continue;
    q.set(k, Array.isArray(v) ? v.join(",") : String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

async function errorOf(res) {
  let code = "", message = `${res.status} ${res.statusText}`.trim();
  try {
    const body = await res.json();
    const err = body && (body.error || body);
    if (err && (err.code || err.message)) { code = err.code || ""; message = err.message || message; }
  } catch { /* not JSON: keep the status line */ }
  return new ApiError(res.status, code, message);
}

// fetch with the key; `body` may be an object (JSON), FormData, Blob/File (octet-stream) or undefined.
export async function request(method, path, { params, body, key, base = TRAINING, header = "Training-Key",
                                               raw = false, signal } = {}) {
  const headers = { [header]: key ?? session.key };
  let payload = body;
  if (body instanceof Blob) headers["Content-Type"] = "application/octet-stream";
  else if (body !== undefined && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(base + path + query(params), { method, headers, body: payload, signal });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "Unreachable", "The service did not answer. Is it running?");
  }
  return settle(res, key, raw);
}

async function settle(res, key, raw = false) {
  if (!res.ok && res.status !== 207) {
    const err = await errorOf(res);
    if (res.status === 401 && key === undefined) onUnauthorized(err);
    throw err;
  }
  if (raw) return res;
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

// A multipart upload that reports how much of its body has been sent (fetch cannot): onProgress(0..1).
export function upload(path, params, form, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", TRAINING + path + query(params));
    xhr.setRequestHeader("Training-Key", session.key);
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
    xhr.addEventListener("error", () => reject(new ApiError(0, "Unreachable", "The service did not answer. Is it running?")));
    xhr.addEventListener("load", () => {
      const res = new Response(xhr.status === 204 ? null : xhr.responseText,
                               { status: xhr.status, statusText: xhr.statusText });
      settle(res).then(resolve, reject);
    });
    xhr.send(form);
  });
}

export const get = (path, params, opts) => request("GET", path, { ...opts, params });
export const post = (path, params, body, opts) => request("POST", path, { ...opts, params, body });
export const patch = (path, body, opts) => request("PATCH", path, { ...opts, body });
export const del = (path, params, opts) => request("DELETE", path, { ...opts, params });

// Checks a key without touching the stored one (the login form).
export const checkKey = (key) => request("GET", "/domains", { key });

export const predictionBase = PREDICTION;
export const trainingBase = TRAINING;

// Prediction API (the "Prediction URL" panel and its test button use these).
export function predictImage(projectId, publishName, kind, file, { store = true } = {}) {
  return request("POST", `/${projectId}/${kind}/iterations/${encodeURIComponent(publishName)}/image` +
                 (store ? "" : "/nostore"), { base: PREDICTION, header: "Prediction-Key",
                                              key: session.predictionKey, body: file });
}

// Project-scoped helpers used by several pages.
export const project = {
  get: (id) => get(`/projects/${id}`),
  tags: (id) => get(`/projects/${id}/tags`),
  iterations: (id) => get(`/projects/${id}/iterations`),
};

// Runs `task(item)` over items with at most `limit` in flight; resolves to results in order.
export async function pool(items, limit, task) {
  const out = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      out[i] = await task(items[i], i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
