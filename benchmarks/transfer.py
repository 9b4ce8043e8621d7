"""Project transfer: export_project then import_project of a project through the official SDK on the local
host (Azurite), inline (at most project_transfer.INLINE_IMAGES images) and in the background (more: the
reply says Importing, the project-imports queue trigger finishes it). Baseline in the same run: uploading
the same images through create_images_from_files. Environment: TRANSFER_IMAGES (default 1000),
TRANSFER_INLINE_IMAGES (default 200)."""

from __future__ import annotations

import os
import time

from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)
from msrest.authentication import ApiKeyCredentials

from cvcore import layout
from cvcore.settings import LOCAL_TRAINING_KEY
from tests.support import images as imgs
from tests.support.azurite import running_azurite
from tests.support.localhost import running_host

BATCH = 64


def _source(trainer, n: int) -> tuple[str, float]:
    project = trainer.create_project(f"src-{layout.new_id()[:8]}")
    tags = [trainer.create_tag(project.id, name).id for name in ("left", "right")]
    start = time.perf_counter()
    for i in range(0, n, BATCH):
        batch = ImageFileCreateBatch(
            images=[
                ImageFileCreateEntry(
                    name=f"{k}.jpg", contents=imgs.photo_jpeg(5000 + k, (320, 240)), tag_ids=[tags[k % 2]]
                )
                for k in range(i, min(i + BATCH, n))
            ]
        )
        assert trainer.create_images_from_files(project.id, batch).is_batch_successful
    return project.id, time.perf_counter() - start


def _transfer(trainer, project_id: str, n: int) -> dict:
    t = time.perf_counter()
    token = trainer.export_project(project_id).token
    exported = time.perf_counter() - t
    t = time.perf_counter()
    copy = trainer.import_project(token, name=f"copy-{layout.new_id()[:8]}")
    replied, status = time.perf_counter() - t, copy.status
    while copy.status == "Importing" and time.perf_counter() - t < 1800:
        time.sleep(0.5)
        copy = trainer.get_project(copy.id)
    done = time.perf_counter() - t
    assert copy.status == "Succeeded", copy.status
    assert trainer.get_image_count(copy.id) == n
    trainer.delete_project(copy.id)
    return {
        "images": n,
        "export_s": round(exported, 2),
        "reply_s": round(replied, 2),
        "first_status": status,
        "import_s": round(done, 2),
        "images_per_s": round(n / done, 1),
    }


def run() -> dict:
    n_big = int(os.environ.get("TRANSFER_IMAGES", "1000"))
    n_small = int(os.environ.get("TRANSFER_INLINE_IMAGES", "200"))
    with running_azurite() as conn, running_host(conn, poll_interval=0.5) as url:
        trainer = CustomVisionTrainingClient(
            url, ApiKeyCredentials(in_headers={"Training-key": LOCAL_TRAINING_KEY})
        )
        rows = []
        for n in (n_small, n_big):
            source, upload_s = _source(trainer, n)
            row = _transfer(trainer, source, n)
            row.update(upload_s=round(upload_s, 2), ratio_vs_upload=round(row["import_s"] / upload_s, 2))
            rows.append(row)
            trainer.delete_project(source)
    return {"rows": rows}


def report(r: dict) -> str:
    lines = [
        "transfer: export_project + import_project via the SDK (320x240 JPEGs), against uploading the same "
        "images via create_images_from_files in the same run"
    ]
    for x in r["rows"]:
        lines.append(
            f"  {x['images']:>6} images: export {x['export_s']:.2f} s, reply {x['reply_s']:.2f} s "
            f"({x['first_status']}), imported in {x['import_s']:.1f} s ({x['images_per_s']} images/s); "
            f"upload {x['upload_s']:.1f} s, ratio import/upload {x['ratio_vs_upload']:.2f}"
        )
    return "\n".join(lines)
