"""Ingest: 256 real 640x480 JPEGs uploaded through the official SDK in batches of 64 (the full API path:
HTTP, base64, decode and checks, thumbnail, blob writes, table rows) against uploading the same bytes
straight to Blob storage in the same run, sequentially and with 8 threads."""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)
from azure.storage.blob import BlobServiceClient
from msrest.authentication import ApiKeyCredentials

from cvcore import layout
from cvcore.settings import LOCAL_TRAINING_KEY
from tests.support import images as imgs
from tests.support.azurite import running_azurite
from tests.support.localhost import running_host

N_IMAGES, BATCH, REPEATS = 256, 64, 3


def _upload_api(trainer, photos: list[bytes]) -> float:
    project = trainer.create_project(f"bench-{layout.new_id()[:8]}")
    tag = trainer.create_tag(project.id, "bench")
    start = time.perf_counter()
    for i in range(0, len(photos), BATCH):
        batch = ImageFileCreateBatch(
            images=[
                ImageFileCreateEntry(name=f"{i + j}.jpg", contents=p)
                for j, p in enumerate(photos[i : i + BATCH])
            ],
            tag_ids=[tag.id],
        )
        summary = trainer.create_images_from_files(project.id, batch)
        assert summary.is_batch_successful, [im.status for im in summary.images if im.status != "OK"][:3]
    elapsed = time.perf_counter() - start
    assert trainer.get_image_count(project.id) == len(photos)
    trainer.delete_project(project.id)
    return elapsed


def _upload_blobs(service: BlobServiceClient, photos: list[bytes], threads: int) -> float:
    prefix = f"bench/{layout.new_id()}/"
    container = service.get_container_client(layout.IMAGES)

    def put(item):
        i, data = item
        container.upload_blob(f"{prefix}{i}.jpg", data, overwrite=True)

    start = time.perf_counter()
    if threads == 1:
        for item in enumerate(photos):
            put(item)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(put, enumerate(photos)))
    return time.perf_counter() - start


def run() -> dict:
    photos = [imgs.photo_jpeg(1000 + i, size=(640, 480)) for i in range(N_IMAGES)]
    with running_azurite() as conn, running_host(conn, poll_interval=2.0) as url:
        trainer = CustomVisionTrainingClient(
            url, ApiKeyCredentials(in_headers={"Training-key": LOCAL_TRAINING_KEY})
        )
        service = BlobServiceClient.from_connection_string(conn)
        _upload_api(
            trainer, [imgs.photo_jpeg(9000 + i) for i in range(8)]
        )  # warm-up: imports, clients, tables
        _upload_blobs(service, photos[:8], 1)
        api, seq, par = [], [], []
        for _ in range(REPEATS):  # interleaved so drift hits all three alike
            api.append(_upload_api(trainer, photos))
            seq.append(_upload_blobs(service, photos, 1))
            par.append(_upload_blobs(service, photos, 8))
    api_t, seq_t, par_t = (statistics.median(x) for x in (api, seq, par))
    return {
        "images": N_IMAGES,
        "batch": BATCH,
        "repeats": REPEATS,
        "mean_jpeg_bytes": sum(map(len, photos)) // len(photos),
        "api_seconds": api_t,
        "api_images_per_s": N_IMAGES / api_t,
        "blob_sequential_images_per_s": N_IMAGES / seq_t,
        "blob_8threads_images_per_s": N_IMAGES / par_t,
        "ratio_vs_blob_sequential": (N_IMAGES / api_t) / (N_IMAGES / seq_t),
        "ratio_vs_blob_8threads": (N_IMAGES / api_t) / (N_IMAGES / par_t),
        "api_runs_s": api,
        "blob_sequential_runs_s": seq,
        "blob_8threads_runs_s": par,
    }


def report(r: dict) -> str:
    return (
        f"ingest: {r['images']} real 640x480 JPEGs (~{r['mean_jpeg_bytes'] // 1024} KiB) via SDK in batches of "
        f"{r['batch']}, median of {r['repeats']}\n"
        f"  API (create_images_from_files)  {r['api_images_per_s']:7.1f} images/s  ({r['api_seconds']:.2f} s)\n"
        f"  Blob upload, sequential         {r['blob_sequential_images_per_s']:7.1f} images/s   "
        f"ratio API/blob {r['ratio_vs_blob_sequential']:.2f}\n"
        f"  Blob upload, 8 threads          {r['blob_8threads_images_per_s']:7.1f} images/s   "
        f"ratio API/blob {r['ratio_vs_blob_8threads']:.2f}"
    )
