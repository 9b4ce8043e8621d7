"""Load for the chaos tests: raw HTTP uploaders and predictors (raw, not the SDK, so every reply's status,
Retry-After and body are seen as they came, with no client retry in between), and the checks that compare
what the replies said with what storage holds afterwards."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from cvcore import layout
from cvcore.settings import LOCAL_PREDICTION_KEY, LOCAL_TRAINING_KEY
from tests.support import images as imgs
from tests.support.chaos import Tally, blob_names, table_rows

REQUEST_BOUND_S = 30  # no reply may take longer, pause or not: past this it is a hang (a finding)
TRAINING = "/customvision/v3.3/training"
PREDICTION = "/customvision/v3.0/prediction"


def distinct_jpegs(start: int, count: int) -> list[bytes]:
    """`count` different small real photos (distinct bytes, so distinct content-addressed image ids)."""
    return [imgs.photo_jpeg(start + i, size=(96, 72), quality=80) for i in range(count)]


@dataclass
class Outcome:
    """What the clients were told: ids of images (or predictions) the replies said were stored, ids sent
    in requests that were refused or got no reply (they may or may not have landed), and the replies."""

    ok: set[str] = field(default_factory=set)
    uncertain: set[str] = field(default_factory=set)
    tally: Tally = field(default_factory=Tally)
    problems: list[str] = field(default_factory=list)
    requests: int = 0
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _check_refusal(reply: requests.Response, out: Outcome) -> None:
    """A refusal during a storage fault must be a clear 503: Retry-After and a Custom Vision error body."""
    if reply.status_code != 503:
        out.problems.append(f"{reply.status_code}: {reply.text[:300]}")
        return
    try:
        body = reply.json()
    except ValueError:
        body = None
    if not (isinstance(body, dict) and body.get("code") and body.get("message")):
        out.problems.append(f"503 without a Custom Vision error body: {reply.text[:200]}")
    if not reply.headers.get("Retry-After", "").isdigit():
        out.problems.append(f"503 without a Retry-After: {dict(reply.headers)}")


def _post(url: str, out: Outcome, **kw) -> requests.Response | None:
    started = time.monotonic()
    try:
        reply = requests.post(url, timeout=(5, REQUEST_BOUND_S), **kw)
    except requests.RequestException as exc:
        out.tally.add(type(exc).__name__, time.monotonic() - started)
        with out.lock:
            out.problems.append(f"no reply within {REQUEST_BOUND_S} s: {type(exc).__name__}")
        return None
    out.tally.add(reply.status_code, time.monotonic() - started)
    return reply


def run_threads(n: int, work: Callable[[int], None]) -> float:
    """Run work(0..n-1) in n threads at once; the seconds they took together."""
    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(n)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=REQUEST_BOUND_S * 4)
    assert not any(t.is_alive() for t in threads), "a client thread hung"
    return time.monotonic() - started


def upload(
    base: str,
    project_id: str,
    tag_id: str,
    batches: list[list[list[bytes]]],
    until: float | None = None,
) -> Outcome:
    """One thread per entry of `batches`, each posting its batches (images/files, base64 JSON) in turn
    (stopping early at monotonic `until`)."""
    out = Outcome()
    url = f"{base}{TRAINING}/projects/{project_id}/images/files"

    def work(i: int) -> None:
        for n, batch in enumerate(batches[i]):
            if until is not None and time.monotonic() > until:
                return
            ids = {layout.image_id_for(project_id, hashlib.sha256(b).hexdigest()) for b in batch}
            body = {
                "images": [
                    {"name": f"u{i}-{n}-{k}.jpg", "contents": base64.b64encode(b).decode()}
                    for k, b in enumerate(batch)
                ],
                "tagIds": [tag_id],
            }
            reply = _post(url, out, json=body, headers={"Training-Key": LOCAL_TRAINING_KEY})
            with out.lock:
                out.requests += 1
                if reply is None or reply.status_code != 200:
                    out.uncertain |= ids
                    if reply is not None:
                        _check_refusal(reply, out)
                    continue
                for entry in reply.json()["images"]:
                    if entry["status"] in ("OK", "OKDuplicate"):
                        out.ok.add(entry["image"]["id"])
                    else:
                        out.problems.append(f"image refused: {entry['status']} {entry.get('message')}")
                out.uncertain |= ids - out.ok

    out.seconds = run_threads(len(batches), work)
    return out


def predict(
    base: str,
    project_id: str,
    publish_name: str,
    clients: int,
    per_client: int,
    image: Callable[[int, int], bytes],
    until: float | None = None,
) -> tuple[Outcome, Outcome]:
    """`clients` threads, even ones storing (/image), odd ones not (/image/nostore), each sending up to
    `per_client` images; returns (stored outcome, nostore outcome)."""
    stored, nostore = Outcome(), Outcome()
    path = f"{base}{PREDICTION}/{project_id}/classify/iterations/{publish_name}/image"

    def work(i: int) -> None:
        out, url = (stored, path) if i % 2 == 0 else (nostore, path + "/nostore")
        for n in range(per_client):
            if until is not None and time.monotonic() > until:
                return
            reply = _post(
                url,
                out,
                data=image(i, n),
                headers={"Prediction-Key": LOCAL_PREDICTION_KEY, "Content-Type": "application/octet-stream"},
            )
            with out.lock:
                out.requests += 1
                if reply is None:
                    continue
                if reply.status_code == 200:
                    body = reply.json()
                    if not body.get("predictions"):
                        out.problems.append(f"200 without predictions: {reply.text[:200]}")
                    out.ok.add(body["id"])
                else:
                    _check_refusal(reply, out)

    seconds = run_threads(clients, work)
    stored.seconds = nostore.seconds = seconds
    return stored, nostore


def stored_images(conn: str, project_id: str) -> tuple[set[str], set[str], set[str]]:
    """(image ids with a row, ids with an original blob, ids with a thumbnail blob), read directly."""
    rows = {
        r["RowKey"]
        for r in table_rows(conn, layout.IMAGES_TABLE, project_id)
        if not r["RowKey"].startswith("~")  # the partition's counter rows (~counts-N), not images
    }
    prefix = layout.project_prefix(project_id)
    originals = {n.rsplit("/", 1)[1] for n in blob_names(conn, layout.IMAGES, prefix + "originals/")}
    thumbs = {
        n.rsplit("/", 1)[1].removesuffix(".jpg")
        for n in blob_names(conn, layout.IMAGES, prefix + "thumbnails/")
    }
    return rows, originals, thumbs


def stored_prediction_blobs(conn: str, project_id: str) -> tuple[set[str], set[str]]:
    """(prediction ids with an image blob, with a thumbnail blob), read directly."""
    prefix = layout.project_prefix(project_id)
    images = {n.rsplit("/", 1)[1] for n in blob_names(conn, layout.PREDICTIONS, prefix + "originals/")}
    thumbs = {
        n.rsplit("/", 1)[1].removesuffix(".jpg")
        for n in blob_names(conn, layout.PREDICTIONS, prefix + "thumbnails/")
    }
    return images, thumbs


def queried_predictions(base: str, project_id: str) -> set[str]:
    """Every stored prediction id the Training API's query returns (paged by its continuation token)."""
    ids: set[str] = set()
    token: dict = {"maxCount": 256}
    url = f"{base}{TRAINING}/projects/{project_id}/predictions/query"
    for _ in range(100):
        reply = requests.post(url, json=token, headers={"Training-Key": LOCAL_TRAINING_KEY}, timeout=30)
        reply.raise_for_status()
        body = reply.json()
        ids |= {r["id"] for r in body["results"]}
        if not body.get("token", {}).get("continuation"):
            return ids
        token = body["token"]
    raise AssertionError("the prediction query did not end within 100 pages")


def image_count(base: str, project_id: str) -> int:
    reply = requests.get(
        f"{base}{TRAINING}/projects/{project_id}/images/count",
        headers={"Training-Key": LOCAL_TRAINING_KEY},
        timeout=30,
    )
    reply.raise_for_status()
    return int(reply.json())
