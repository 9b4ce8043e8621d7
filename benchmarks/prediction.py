"""Prediction: a model the trainer really trained (a cat vs a coffee cup, Quick training, compact domain),
published and called over HTTP through the local host (a real process) on real Azurite.

- breakdown, in this process on the same model: full decode (the trainer's), the route's decode at the
  scale the model needs (cvcore.inference.decode), preprocess, forward, the whole handler without HTTP
  (http_prediction.handle on a func.HttpRequest), and the HTTP floor (a refused key: the same body through
  the devhost's server and the key check, no model);
- warm latency: the same 640x480 JPEG (and a 2048x1536 photo) end to end through the host's route, each
  against a bare decode + preprocess + forward of the same model in this process (the trainer's full
  decode), in alternating blocks of 25; p50 / p95 and their ratios (target: nostore <= 1.15x). Storing:
  the same with the storing route and a pause (not timed) after each call in which the host stores it
  after the reply, as between a person's requests; target: store adds <= 0.1x of the bare p50 to nostore's;
- the host is left to settle (its CPU idle) before each timed part, so a training event still being handled
  is not billed to the route;
- cold: publish -> first answer (model load included), and host process start -> first answer;
- throughput with 1, 2, 8 and 16 concurrent clients (requests per second, errors), against the bare loop;
- resident memory of the host per loaded model (copies of the model published under other names).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import threading
import time
from functools import partial
from urllib.parse import urlsplit

import azure.functions as func
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)
from msrest.authentication import ApiKeyCredentials

from cvcore import artifacts, inference, layout, settings
from cvcore.imaging import MAX_PREDICTION_IMAGE_BYTES, check_image, decode_rgb
from functions import bootstrap, http_prediction
from functions.domain.records import utcnow
from functions.prediction.ports import StoredPrediction
from functions.prediction.session_cache import _session
from tests.support import images as imgs
from tests.support.azurite import running_azurite
from tests.support.localhost import running_host, running_trainer

COMPACT = "0732100f-1a38-4e49-a514-c9b44c697ab5"
WARM_N, THROUGHPUT_S, CLIENTS, COPIES = 300, 5.0, (1, 2, 8, 16), 4
STORE_PAUSE_S = float(
    os.environ.get("PREDICTION_STORE_PAUSE_S", "0.05")
)  # between two storing requests (not timed): the host stores the last one meanwhile


class _NoDelay(http.client.HTTPConnection):
    """http.client sends headers and body in two writes; without TCP_NODELAY (which urllib3, and so the
    SDK, sets) the body's last segment waits for a delayed ACK: 40 ms that are the client's, not the host's."""

    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class HttpClientClient:
    """One keep-alive http.client connection posting image bytes to a prediction route (the standard library's
    client: its header parsing goes through the email package, a cost of the client's own)."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.conn = _NoDelay(parts.hostname, parts.port, timeout=60)

    def post(
        self, path: str, data: bytes, key: str = settings.LOCAL_PREDICTION_KEY, status: int = 200
    ) -> dict:
        headers = {"Prediction-Key": key, "Content-Type": "application/octet-stream"}
        try:
            self.conn.request("POST", path, body=data, headers=headers)
            resp = self.conn.getresponse()
        except (http.client.HTTPException, OSError):  # the server closed an idle keep-alive connection
            self.conn.close()
            self.conn.request("POST", path, body=data, headers=headers)
            resp = self.conn.getresponse()
        body = resp.read()
        if resp.status != status:
            raise RuntimeError(f"{path}: HTTP {resp.status} {body[:300]!r}")
        return json.loads(body)


class Client:
    """One keep-alive HTTP/1.1 connection posting image bytes to a prediction route, as lean as a client can
    be (request written in one send, the answer read by its Content-Length), so the timings are the host's
    and not the client's own parsing; HttpClientClient is measured beside it for what a stdlib client adds."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.address, self.host = (parts.hostname, parts.port), parts.netloc
        self.sock = self.reader = None

    def _connect(self) -> None:
        self.close()
        self.sock = socket.create_connection(self.address, timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    def close(self) -> None:
        if self.sock is not None:
            self.reader.close()
            self.sock.close()
        self.sock = self.reader = None

    def _exchange(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        line = self.reader.readline()
        if not line:
            raise ConnectionError("the server closed the connection")
        code, length, close = int(line.split()[1]), 0, False
        while (header := self.reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = header.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        body = self.reader.read(length)
        if close:
            self.close()
        return code, body

    def post(
        self, path: str, data: bytes, key: str = settings.LOCAL_PREDICTION_KEY, status: int = 200
    ) -> dict:
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nPrediction-Key: {key}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {len(data)}\r\n\r\n"
        ).encode("latin-1") + data
        if self.sock is None:
            self._connect()
        try:
            code, body = self._exchange(request)
        except (ConnectionError, OSError, ValueError, IndexError):  # an idle keep-alive connection closed
            self._connect()
            code, body = self._exchange(request)
        if code != status:
            raise RuntimeError(f"{path}: HTTP {code} {body[:300]!r}")
        return json.loads(body)


def _route(project_id: str, name: str, store: bool) -> str:
    return f"/customvision/v3.1/prediction/{project_id}/classify/iterations/{name}/image" + (
        "" if store else "/nostore"
    )


def _train(trainer) -> tuple[str, str]:
    project = trainer.create_project("bench-predict", domain_id=COMPACT)
    for name, kind in (("cat", 1), ("cup", 2)):
        tag = trainer.create_tag(project.id, name)
        batch = ImageFileCreateBatch(
            images=[
                ImageFileCreateEntry(
                    name=f"{n}.jpg", contents=imgs.photo_jpeg(kind + 7 * (3 * n + 1), size=(320, 240))
                )
                for n in range(6)
            ],
            tag_ids=[tag.id],
        )
        assert trainer.create_images_from_files(project.id, batch).is_batch_successful
    iteration = trainer.train_project(project.id)
    while (it := trainer.get_iteration(project.id, iteration.id)).status not in ("Completed", "Failed"):
        time.sleep(0.3)
    assert it.status == "Completed", it.training_error_details
    return project.id, it.id


def _pct(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]
    )


def _stats(seconds: list[float]) -> dict:
    ms = [s * 1000 for s in seconds]
    return {"p50_ms": statistics.median(ms), "p95_ms": _pct(ms, 95), "n": len(ms)}


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _settle(pid: int, quiet: float = 0.03, window: float = 0.5, limit: float = 60.0) -> float:
    """Wait until the process uses under `quiet` of a core over `window` (or `limit` passes); seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        before = _cpu_s(pid)
        time.sleep(window)
        if _cpu_s(pid) - before < quiet * window:
            break
    return time.perf_counter() - start


def _host_pid(url: str) -> int:
    """The local host process serving `url` (found by its command line)."""
    wanted = ["devhost", "--port", str(urlsplit(url).port)]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().decode().split("\0")
        except OSError:
            continue
        if all(w in argv for w in wanted):
            return int(pid)
    raise RuntimeError("host process not found")


def _bare(services, project_id: str, iteration_id: str):
    """The same model, loaded as the host loads it, and the same work without HTTP and storage."""
    data = services.blobs.get(
        layout.MODELS, layout.iteration_artifact(project_id, iteration_id, layout.MODEL_ONNX)
    )
    sidecar = artifacts.ModelSidecar.from_json(
        json.loads(
            services.blobs.get(
                layout.MODELS, layout.iteration_artifact(project_id, iteration_id, layout.MODEL_SIDECAR)
            )
        )
    )
    session = _session(data)

    def forward(jpeg: bytes):
        image = decode_rgb(jpeg, max_bytes=MAX_PREDICTION_IMAGE_BYTES)
        return session.run(["probabilities"], {"image": artifacts.preprocess([image], sidecar)})[0]

    def forward_and_store(jpeg: bytes):
        """The same, then storing it one step after another as the route does (check and thumbnail, the
        two blobs, the record) straight through the store adapter."""
        probs = forward(jpeg)
        checked = check_image(jpeg, max_bytes=MAX_PREDICTION_IMAGE_BYTES)
        now = utcnow()
        pid = layout.new_prediction_id(int(now.timestamp() * 1000))
        store = services.predictor.store
        store.put_images(project_id, pid, checked.data, checked.content_type, checked.thumbnail)
        store.add(
            StoredPrediction(
                id=pid,
                project_id=project_id,
                iteration_id=iteration_id,
                publish_name="bare",
                application="",
                created=now,
                task=sidecar.task,
                predictions=[
                    {"probability": float(x), "tagId": lab.tag_id}
                    for x, lab in zip(probs[0], sidecar.labels, strict=True)
                ],
            )
        )

    return forward, forward_and_store, len(data), session, sidecar


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _median_ms(fn, n: int = WARM_N) -> float:
    for _ in range(10):
        fn()
    return statistics.median(_timed(fn) for _ in range(n)) * 1000


def _breakdown(url: str, services, route: str, jpeg: bytes, session, sidecar) -> dict:
    """Where a warm nostore request's time goes, part by part, measured here on the same model."""
    full = decode_rgb(jpeg, max_bytes=MAX_PREDICTION_IMAGE_BYTES)
    draft = inference.decode(jpeg, sidecar)
    batch = artifacts.preprocess([full], sidecar)
    parts = urlsplit(url)
    request = func.HttpRequest(
        "POST",
        url + route,
        body=jpeg,
        params={},
        headers={"prediction-key": settings.LOCAL_PREDICTION_KEY, "content-type": "application/octet-stream"},
        route_params={"version": "v3.1", "path": route.split("/prediction/", 1)[1]},
    )
    bootstrap.override(services)
    try:
        assert http_prediction.handle(request).status_code == 200
        handler = _median_ms(lambda: http_prediction.handle(request))
    finally:
        bootstrap.override(None)
    client = Client(f"http://{parts.hostname}:{parts.port}")
    return {
        "decode_full_ms": _median_ms(lambda: decode_rgb(jpeg, max_bytes=MAX_PREDICTION_IMAGE_BYTES)),
        "decode_route_ms": _median_ms(lambda: inference.decode(jpeg, sidecar)),
        "decoded_size_route": list(draft.size),
        "decoded_size_full": list(full.size),
        "preprocess_full_ms": _median_ms(lambda: artifacts.preprocess([full], sidecar)),
        "preprocess_route_ms": _median_ms(lambda: artifacts.preprocess([draft], sidecar)),
        "forward_ms": _median_ms(lambda: session.run(["probabilities"], {"image": batch})),
        "handler_in_process_ms": handler,
        "http_floor_ms": _median_ms(lambda: client.post(route, jpeg, key="not-the-key", status=401)),
    }


def _blocks(runs: dict, n: int = WARM_N, block: int = 25, pause: float = 0.0) -> dict[str, list[float]]:
    """n timings of each of `runs` (name -> call), in blocks of `block` calls of one, the order of the
    variants turning each round, so a slow moment costs all alike while each block runs warm, as a
    server's consecutive requests do (a bare call between two requests would evict the host's model from
    the CPU caches and bill it to HTTP); an untimed `pause` after each call."""
    for _ in range(10):
        for fn in runs.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for k in range(0, n, block):
        turn = (k // block) % len(names)
        for name in names[turn:] + names[:turn]:
            for _ in range(min(block, n - k)):
                times[name].append(_timed(runs[name]))
                if pause:
                    time.sleep(pause)
    return times


def _ratios(out: dict, name: str, base: str) -> None:
    for q in ("p50", "p95"):
        out[name][f"{q}_ratio_to_{base}"] = out[name][f"{q}_ms"] / out[base][f"{q}_ms"]


def _throughput(work, clients: int, seconds: float) -> dict:
    done, stop, lock, errors = [], threading.Event(), threading.Lock(), []

    def loop():
        call = work()
        while not stop.is_set():
            try:
                t = _timed(call)
            except Exception as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                continue
            with lock:
                done.append(t)

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {
        "clients": clients,
        "rps": len(done) / elapsed,
        "p50_ms": statistics.median(done) * 1000 if done else None,
        "requests": len(done),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


def _copies(services, project_id: str, iteration_id: str, n: int) -> list[str]:
    """Publish n copies of the iteration (same artifacts under new iteration ids) as m0..m{n-1}."""
    from functions.training import iterations

    source = services.repo.get_iteration(project_id, iteration_id)
    names = []
    for k in range(n):
        copy = layout.new_id()
        for name in (layout.MODEL_ONNX, layout.MODEL_SIDECAR):
            services.blobs.put(
                layout.MODELS,
                layout.iteration_artifact(project_id, copy, name),
                services.blobs.get(layout.MODELS, layout.iteration_artifact(project_id, iteration_id, name)),
                "application/octet-stream",
            )
        source.id, source.name, source.publish_name, source.etag = copy, f"copy {k}", None, None
        services.repo.add_iteration(project_id, source)
        iterations.publish(services.repo, project_id, copy, f"m{k}", None, False)
        names.append(f"m{k}")
    return names


def run() -> dict:
    jpeg = imgs.photo_jpeg(1 + 7 * 61, size=(640, 480))
    large = imgs.photo_jpeg(1 + 7 * 62, size=(2048, 1536))
    out: dict = {"image_bytes": len(jpeg), "large_image_bytes": len(large)}
    with running_azurite() as conn:
        services = bootstrap.build(settings.load({"AzureWebJobsStorage": conn}))
        with running_host(conn, poll_interval=1.0) as url:
            trainer = CustomVisionTrainingClient(
                url, ApiKeyCredentials(in_headers={"Training-key": settings.LOCAL_TRAINING_KEY})
            )
            with running_trainer(conn):
                project_id, iteration_id = _train(trainer)
            forward, forward_and_store, out["model_bytes"], session, sidecar = _bare(
                services, project_id, iteration_id
            )
            out["input_size"] = list(sidecar.input_size)
            pid = _host_pid(url)
            client = Client(url)
            cold = []
            for _ in range(3):  # unpublishing drops the loaded model, so each publish loads it again
                _settle(pid)
                start = time.perf_counter()
                trainer.publish_iteration(project_id, iteration_id, "prod", "/subscriptions/local/prediction")
                client.post(_route(project_id, "prod", False), jpeg)
                cold.append(time.perf_counter() - start)
                trainer.unpublish_iteration(project_id, iteration_id)
            out["cold_publish_to_answer_s"] = statistics.median(cold)
            trainer.publish_iteration(project_id, iteration_id, "prod", "/subscriptions/local/prediction")
            nostore, store = _route(project_id, "prod", False), _route(project_id, "prod", True)
            out["settle_s"] = _settle(pid)
            out["breakdown"] = _breakdown(url, services, nostore, jpeg, session, sidecar)
            warm: dict = {}
            _settle(pid)
            for suffix, image in (("", jpeg), ("_large", large)):
                _settle(pid)
                runs = {"bare": partial(forward, image), "http_nostore": partial(client.post, nostore, image)}
                if not suffix:  # the same requests through the standard library's client, for what it adds
                    runs["http_nostore_stdlib_client"] = partial(HttpClientClient(url).post, nostore, image)
                times = _blocks(runs)
                warm.update({name + suffix: _stats(t) for name, t in times.items()})
            _settle(pid)
            times = _blocks(
                {
                    "bare": lambda: forward(jpeg),
                    "http_nostore": lambda: client.post(nostore, jpeg),
                    "http_store": lambda: client.post(store, jpeg),
                },
                pause=STORE_PAUSE_S,
            )
            warm.update({name + "_paced": _stats(t) for name, t in times.items()})
            _settle(pid)
            warm["bare_store"] = _stats([_timed(lambda: forward_and_store(jpeg)) for _ in range(WARM_N // 3)])
            _ratios(warm, "http_nostore", "bare")
            _ratios(warm, "http_nostore_stdlib_client", "bare")
            _ratios(warm, "http_nostore_large", "bare_large")
            _ratios(warm, "http_nostore_paced", "bare_paced")
            _ratios(warm, "http_store_paced", "bare_paced")
            warm["store_adds_x_bare"] = (
                warm["http_store_paced"]["p50_ms"] - warm["http_nostore_paced"]["p50_ms"]
            ) / warm["bare_paced"]["p50_ms"]
            out["warm"] = warm
            _settle(pid)
            out["throughput"] = {
                "bare": [_throughput(lambda: lambda: forward(jpeg), n, THROUGHPUT_S) for n in CLIENTS],
                "http_nostore": [
                    _throughput(lambda: partial(Client(url).post, nostore, jpeg), n, THROUGHPUT_S)
                    for n in CLIENTS
                ],
                "http_store": [
                    _throughput(lambda: partial(Client(url).post, store, jpeg), n, THROUGHPUT_S)
                    for n in CLIENTS
                ],
            }
            _settle(pid)
            names = _copies(services, project_id, iteration_id, COPIES)
            client.post(_route(project_id, names[0], False), jpeg)
            before = _rss_mb(pid)
            for name in names[1:]:
                client.post(_route(project_id, name, False), jpeg)
            out["host_rss_mb"] = _rss_mb(pid)
            out["rss_per_model_mb"] = (out["host_rss_mb"] - before) / (COPIES - 1)
        start = time.perf_counter()
        with running_host(conn, poll_interval=1.0) as url:
            Client(url).post(nostore, jpeg)
            out["cold_process_start_to_answer_s"] = time.perf_counter() - start
        services.pool.shutdown(wait=False)
    return out


def report(r: dict) -> str:
    w, b = r["warm"], r["breakdown"]
    lines = [
        f"prediction (2 CPU cores; trained cat/cup model, {r['model_bytes'] / 1e6:.1f} MB ONNX, input "
        f"{r['input_size'][1]}x{r['input_size'][0]}; 640x480 JPEG of {r['image_bytes'] / 1e3:.0f} kB; host settled "
        f"{r['settle_s']:.1f} s after training)",
        f"  breakdown (this process, same model): decode full {b['decode_full_ms']:.2f} ms "
        f"({b['decoded_size_full'][0]}x{b['decoded_size_full'][1]}), at the model's scale "
        f"{b['decode_route_ms']:.2f} ms ({b['decoded_size_route'][0]}x{b['decoded_size_route'][1]}); preprocess "
        f"{b['preprocess_full_ms']:.2f} / {b['preprocess_route_ms']:.2f} ms; forward {b['forward_ms']:.2f} ms; "
        f"whole handler without HTTP {b['handler_in_process_ms']:.2f} ms; HTTP floor (refused key, same body) "
        f"{b['http_floor_ms']:.2f} ms",
        f"  warm bare full decode+preprocess+forward: p50 {w['bare']['p50_ms']:.1f} ms, p95 {w['bare']['p95_ms']:.1f} ms",
    ]
    for name, base, target in (
        ("http_nostore", "bare", "target <= 1.15"),
        ("http_nostore_stdlib_client", "bare", "the same through http.client"),
        ("http_nostore_large", "bare_large", "2048x1536 photo"),
        ("http_nostore_paced", "bare_paced", f"paced {STORE_PAUSE_S * 1000:.0f} ms"),
        ("http_store_paced", "bare_paced", f"paced {STORE_PAUSE_S * 1000:.0f} ms"),
    ):
        lines.append(
            f"  warm {name}: p50 {w[name]['p50_ms']:.1f} ms, p95 {w[name]['p95_ms']:.1f} ms; vs {base} "
            f"(p50 {w[base]['p50_ms']:.1f}): x{w[name][f'p50_ratio_to_{base}']:.2f} (p50), "
            f"x{w[name][f'p95_ratio_to_{base}']:.2f} (p95)  {target}"
        )
    lines.append(
        f"  storing adds x{w['store_adds_x_bare']:.2f} of the bare p50 to nostore's, both paced (target <= 0.1); storing it "
        f"in turn here (check, blobs, record): p50 {w['bare_store']['p50_ms']:.1f} ms"
    )
    lines.append(
        f"  cold: publish -> first answer {r['cold_publish_to_answer_s']:.2f} s, host process start -> first "
        f"answer {r['cold_process_start_to_answer_s']:.2f} s  target < 1 s"
    )
    for name, rows in r["throughput"].items():
        lines.append(
            f"  throughput {name}: "
            + ", ".join(
                f"{t['clients']} clients {t['rps']:.1f}/s (p50 {t['p50_ms'] or 0:.0f} ms, {t['errors']} errors)"
                for t in rows
            )
        )
    lines.append(
        f"  host resident memory per loaded model: {r['rss_per_model_mb']:.1f} MB (host {r['host_rss_mb']:.0f} MB)"
    )
    return "\n".join(lines)
