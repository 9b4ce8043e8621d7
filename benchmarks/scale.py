"""Scale: projects of 1k, 10k and 100k small real images (Fashion-MNIST upscaled to 56 px) over 500 tags, on real
Azurite, called over HTTP through the local host (a real process). For each size: p50 / p95 (and the first,
cold call) of get_tags with counts, the image counts (all / tagged / untagged / one tag), get_images at the
first page and deep in the set, query_predictions over as many stored predictions (Newest and Suggested),
train's dataset freeze, COCO export, and delete_project (the request, then the background job until Deleted);
in the trainer's process: the dataset load (manifest; decoding every image and holding it, up to HELD_UP_TO
images; the streamed check that decodes each and drops it, with this process's memory growth) and the
embedding cache (write a pack of 1280-d features, read it back). The host's resident memory is sampled
throughout (its peak reported). Two floors per size: GET project through the host, and the storage's own
cost of a 1-row range query and of a point read in the predictions table (Azurite's range queries scan).

Rows and blobs are loaded straight into storage (the ingest benchmark measures uploads through the API). Every
figure is a ratio-free cost per size: how it grows is the point (1k -> 100k). Environment: SCALE_SIZES
(default "1000,10000,100000"), SCALE_REPEATS (15), SCALE_DELETE_WAIT_S (300: how long to follow a background
deletion before reporting its rate so far; it runs on in chunks).
"""

from __future__ import annotations

import http.client
import io
import json
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import numpy as np

from cvcore import layout, settings

from .prediction import _host_pid, _rss_mb

TAGS = 500  # from 5,000 images on; smaller projects get n / 10 (training needs 5 images per tag)


def tags_for(n: int) -> int:
    return min(TAGS, max(2, n // 10))


FEATURE_DIM = 1280
HELD_UP_TO = 10_000  # the trainer's held (decode all and keep) load is timed up to this size; streamed always
DELETE_WAIT_S = float(os.environ.get("SCALE_DELETE_WAIT_S", "300"))


class Http:
    """One keep-alive connection with the Training key."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)

    def call(self, method: str, path: str, params: dict | None = None, body=None) -> tuple[int, bytes]:
        url = f"/customvision/v3.3/training/{path}" + (f"?{urlencode(params)}" if params else "")
        headers = {"Training-Key": settings.LOCAL_TRAINING_KEY}
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        for attempt in range(2):
            try:
                self.conn.request(method, url, body=data, headers=headers)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def ok(self, method: str, path: str, params: dict | None = None, body=None):
        status, data = self.call(method, path, params, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: HTTP {status} {data[:300]!r}")
        return json.loads(data) if data else None


def _timed(fn, repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    ordered = sorted(times[1:]) or times
    return {
        "first_ms": round(times[0], 1),
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
    }


class _PeakMemory(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, _rss_mb(self.pid))
            except (OSError, StopIteration):
                pass
            self.stop.wait(0.1)


def _pngs(count: int) -> list[bytes]:
    from tests.support import fashion_mnist as fm

    x, _ = fm.load("train")
    out = []
    for i in range(count):
        buf = io.BytesIO()
        fm.as_rgb(x[i], 56).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def _seed(s, n: int, pngs: list[bytes]) -> tuple[str, list[str]]:
    """A Multiclass project with TAGS tags and n tagged images (rows, original blobs), n stored predictions."""
    from functions.adapters.predictions import INDEX, entities
    from functions.domain.records import ImageRecord, Tag, utcnow
    from functions.prediction.ports import StoredPrediction
    from functions.training import projects

    pid = projects.create_project(s.repo, f"scale-{n}-{layout.new_id()[:6]}", None, None, "Multiclass", [])[
        "id"
    ]
    now = utcnow()
    tags = [
        Tag(
            id=layout.new_id(),
            name=f"tag-{k:03d}",
            description="",
            type="Regular",
            created=now + timedelta(microseconds=k),
        )
        for k in range(tags_for(n))
    ]
    list(s.pool.map(lambda t: s.repo.save_tag(pid, t), tags))
    records = [
        ImageRecord(
            id=layout.new_id(),
            created=now - timedelta(milliseconds=i),
            width=56,
            height=56,
            content_type="image/png",
            tags={tags[i % len(tags)].id: now},
            source_format="PNG",
        )
        for i in range(n)
    ]
    chunks = [records[i : i + 99] for i in range(0, n, 99)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda c: s.repo.add_images(pid, c), chunks))
        list(
            pool.map(
                lambda i: s.blobs.put(
                    layout.IMAGES, layout.image_original(pid, records[i].id), pngs[i % len(pngs)], "image/png"
                ),
                range(n),
            )
        )
    table = s.clients.table.get_table_client(layout.PREDICTIONS_TABLE)
    rng = np.random.default_rng(n)
    it = layout.new_id()
    ms = int(now.timestamp() * 1000)
    rows = []
    for i in range(n):
        pred_id = layout.new_prediction_id(ms - i)
        t = tags[int(rng.integers(len(tags)))]
        p = float(rng.uniform(0.2, 1.0))
        rows += entities(
            StoredPrediction(
                id=pred_id,
                project_id=pid,
                iteration_id=it,
                publish_name="prod",
                application="",
                created=now,
                task="classification",
                predictions=[{"tagId": t.id, "tagName": t.name, "probability": p}],
                uncertainty=1 - p,
                margin=p,
                signature=f"{int(rng.integers(1 << 62)):016x}",
                width=56,
                height=56,
                content_type="image/png",
            )
        )
    rows.append(
        {"PartitionKey": pid, "RowKey": INDEX}
    )  # what the store writes at a new project's first prediction
    rows.sort(key=lambda e: e["RowKey"])
    batches = [rows[i : i + 100] for i in range(0, len(rows), 100)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda b: table.submit_transaction([("create", e) for e in b]), batches))
    return pid, [t.id for t in tags]


def _trainer_costs(conn: str, pid: str, iteration_id: str, n: int) -> dict:
    from cvcore.storage import StorageClients
    from gpu_trainer import job as trainer_job
    from gpu_trainer.store import BlobFeatureCache, TrainerStore

    store = TrainerStore(StorageClients(settings.load({"AzureWebJobsStorage": conn}).storage))
    t = time.perf_counter()
    m = trainer_job.load_dataset(store, pid, iteration_id)
    manifest_s = time.perf_counter() - t
    out = {
        "manifest_read_s": round(manifest_s, 2),
        "held_decoded_mb": round(trainer_job.decoded_bytes(m) / 2**20),
        "holds_decoded_by_default": trainer_job.holds_decoded(m),
    }
    if n <= HELD_UP_TO:  # decoded once and held (what a dataset under TRAINER_DECODED_MB does)
        t = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            decoded, bad = trainer_job.load_images(store, m, pool)
        load_s = time.perf_counter() - t
        assert len(decoded) == n and not bad, (len(decoded), len(bad))
        del decoded
        out.update(load_decode_s=round(load_s, 2), images_per_s=round(n / load_s))
    # streamed (a dataset over TRAINER_DECODED_MB): each image decoded to check it, then dropped
    memory = _PeakMemory(os.getpid())
    base = _rss_mb(os.getpid())
    memory.start()
    t = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        decoded, bad = trainer_job.load_images(store, m, pool, keep=False)
    stream_s = time.perf_counter() - t
    memory.stop.set()
    assert not decoded and not bad
    out.update(
        stream_check_s=round(stream_s, 2),
        stream_images_per_s=round(n / stream_s),
        stream_rss_growth_mb=round(memory.peak - base),
    )
    cache = BlobFeatureCache(store, pid)
    features = np.random.default_rng(0).normal(size=(n, FEATURE_DIM)).astype(np.float32)
    t = time.perf_counter()
    for im, f in zip(m.images, features, strict=True):
        cache.put(("bench-feature", 224, im["image_id"]), f)
    cache.flush()
    write_s = time.perf_counter() - t
    again = BlobFeatureCache(store, pid)
    t = time.perf_counter()
    hits = sum(again.get(("bench-feature", 224, im["image_id"])) is not None for im in m.images)
    read_s = time.perf_counter() - t
    assert hits == n
    return {**out, "embedding_cache_write_s": round(write_s, 2), "embedding_cache_read_s": round(read_s, 2)}


def _measure(http_: Http, s, conn: str, pid: str, tag_ids: list[str], n: int, repeats: int) -> dict:
    out: dict = {}
    # The floor of any call: one project row read through the same host and connection (the baseline).
    out["floor_get_project"] = _timed(lambda: http_.ok("GET", f"projects/{pid}"), repeats)
    # The storage's own floor at this size: one row by a RowKey range from the predictions table, straight from
    # this process (Azurite scans its tables for a range query, so this grows with the rows it holds; a point
    # read does not; Azure Storage indexes both).
    table = s.clients.table.get_table_client(layout.PREDICTIONS_TABLE)
    out["storage_range_1_row"] = _timed(
        lambda: next(
            iter(
                table.query_entities(
                    "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
                    parameters={"pk": pid, "lo": "", "hi": "g"},
                    results_per_page=1,
                )
            )
        ),
        repeats,
    )
    from functions.adapters.predictions import INDEX

    out["storage_point_read"] = _timed(lambda: table.get_entity(pid, INDEX), repeats)
    out["get_tags"] = _timed(lambda: http_.ok("GET", f"projects/{pid}/tags"), repeats)
    tags = http_.ok("GET", f"projects/{pid}/tags")
    assert len(tags) == tags_for(n) and sum(t["imageCount"] for t in tags) == n
    for name, path, params in (
        ("image_count", "images/count", {}),
        ("tagged_count", "images/tagged/count", {}),
        ("untagged_count", "images/untagged/count", {}),
        ("one_tag_count", "images/tagged/count", {"tagIds": tag_ids[7]}),
    ):
        out[name] = _timed(
            lambda path=path, params=params: http_.ok("GET", f"projects/{pid}/{path}", params), repeats
        )
    assert http_.ok("GET", f"projects/{pid}/images/count") == n
    out["get_images_first_page"] = _timed(
        lambda: http_.ok("GET", f"projects/{pid}/images/tagged", {"take": 50, "skip": 0}), repeats
    )
    deep = http_.ok("GET", f"projects/{pid}/images/tagged", {"take": 50, "skip": n - 50})
    assert len(deep) == 50
    out["get_images_deep"] = _timed(
        lambda: http_.ok("GET", f"projects/{pid}/images/tagged", {"take": 50, "skip": n - 50}), repeats
    )
    out["get_images_one_tag_deep"] = _timed(
        lambda: http_.ok(
            "GET",
            f"projects/{pid}/images/tagged",
            {"take": 50, "skip": max(0, n // tags_for(n) - 5), "tagIds": tag_ids[7]},
        ),
        repeats,
    )
    for order in ("Newest", "Suggested"):
        out[f"query_predictions_{order.lower()}"] = _timed(
            lambda order=order: http_.ok(
                "POST", f"projects/{pid}/predictions/query", body={"orderBy": order, "maxCount": 50}
            ),
            max(3, repeats // 3),
        )
    t = time.perf_counter()
    it = http_.ok("POST", f"projects/{pid}/train")
    out["train_freeze_s"] = round(time.perf_counter() - t, 2)
    out["trainer"] = _trainer_costs(conn, pid, it["id"], n)
    t = time.perf_counter()
    coco = http_.ok("GET", f"projects/{pid}/coco")
    out["coco_export_s"] = round(time.perf_counter() - t, 2)
    assert len(coco["images"]) == n
    t = time.perf_counter()
    http_.ok("DELETE", f"projects/{pid}")
    out["delete_request_ms"] = round((time.perf_counter() - t) * 1000, 1)
    while (
        True
    ):  # until Deleted, or for at most DELETE_WAIT_S: then the rate so far (the job goes on in chunks)
        state = http_.ok("GET", f"projects/{pid}/deletion")
        if state["status"] != "Deleting" or time.perf_counter() - t > DELETE_WAIT_S:
            break
        time.sleep(0.5)
    out["delete_background_s"] = round(time.perf_counter() - t, 1)
    out["delete_status"] = state["status"]
    out["delete_step"] = state.get("step", "")
    out["delete_blobs_per_s"] = round(state.get("blobs", 0) / (time.perf_counter() - t), 1)
    return out


def run() -> dict:
    from functions import bootstrap
    from tests.support.azurite import running_azurite
    from tests.support.localhost import running_host

    sizes = [int(v) for v in os.environ.get("SCALE_SIZES", "1000,10000,100000").split(",") if v]
    repeats = int(os.environ.get("SCALE_REPEATS", "15"))
    pngs = _pngs(2000)
    results = {"tags": TAGS, "sizes": {}}
    with running_azurite() as conn:
        s = bootstrap.build(settings.load({"AzureWebJobsStorage": conn}))
        with running_host(conn) as url:
            pid_of_host = _host_pid(url)
            memory = _PeakMemory(pid_of_host)
            memory.start()
            http_ = Http(url)
            for n in sizes:
                t = time.perf_counter()
                pid, tag_ids = _seed(s, n, pngs)
                seeded = time.perf_counter() - t
                row = _measure(http_, s, conn, pid, tag_ids, n, repeats)
                row["seed_s"] = round(seeded, 1)
                row["host_peak_rss_mb"] = round(memory.peak, 1)
                results["sizes"][str(n)] = row
                print(f"  scale {n}: {json.dumps(row)}", flush=True)
            memory.stop.set()
        s.pool.shutdown(wait=False)
    return results


def report(r: dict) -> str:
    lines = [
        f"scale: up to {r['tags']} tags (n / 10 below 5,000 images); p50 ms (first call) [p50 / the floor's "
        "p50 in the same run] per size"
    ]
    keys = (
        "floor_get_project",
        "storage_range_1_row",
        "storage_point_read",
        "get_tags",
        "image_count",
        "tagged_count",
        "untagged_count",
        "one_tag_count",
        "get_images_first_page",
        "get_images_deep",
        "get_images_one_tag_deep",
        "query_predictions_newest",
        "query_predictions_suggested",
    )
    for k in keys:
        cells = [
            f"{n}: {row[k]['p50_ms']} ({row[k]['first_ms']}) [{row[k]['p50_ms'] / row['floor_get_project']['p50_ms']:.1f}x]"
            for n, row in r["sizes"].items()
        ]
        lines.append(f"  {k:28s} " + "  ".join(cells))
    for k in (
        "train_freeze_s",
        "coco_export_s",
        "delete_request_ms",
        "delete_background_s",
        "delete_status",
        "delete_step",
        "delete_blobs_per_s",
        "host_peak_rss_mb",
        "seed_s",
    ):
        lines.append(f"  {k:28s} " + "  ".join(f"{n}: {row[k]}" for n, row in r["sizes"].items()))
    for k in (
        "manifest_read_s",
        "held_decoded_mb",
        "holds_decoded_by_default",
        "load_decode_s",
        "images_per_s",
        "stream_check_s",
        "stream_images_per_s",
        "stream_rss_growth_mb",
        "embedding_cache_write_s",
        "embedding_cache_read_s",
    ):
        lines.append(
            f"  trainer {k:20s} "
            + "  ".join(f"{n}: {row['trainer'].get(k, '-')}" for n, row in r["sizes"].items())
        )
    return "\n".join(lines)
