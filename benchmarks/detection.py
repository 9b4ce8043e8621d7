"""Detection quality and speed: composed scenes (real object photos pasted onto real backgrounds, exact
boxes: tests/support/scenes.py), 3 tags x 15 training images, Quick training on this machine's CPU, then
the exported graph (onnxruntime) on 60 held-out composed scenes (other seeds: other backgrounds, framings,
positions, scales, distractors) scored with pycocotools; also 30 harder scenes of 2-4 smaller objects than
training saw, and the int8 copy from gpu_trainer.export.
Target: mAP@50 >= 0.6 on the held-out scenes; Quick training within a few minutes on 2 CPU cores.

BENCH_THREADS (default 2) sets torch's threads. On a machine shared with other busy processes, set
OMP_WAIT_POLICY=PASSIVE (or BENCH_THREADS=1): spinning OpenMP threads then slow training down many times."""

from __future__ import annotations

import os
import tempfile
import time

TAGS = ("cat", "cup", "face")
PER_TAG, TEST_PER_TAG, SMALL_PER_TAG = 15, 20, 10
SCENE_SIZE = (320, 240)


def _outputs(path, sidecar, images):
    from cvcore.artifacts import preprocess
    from gpu_trainer.detection import OUTPUT_NAMES
    from gpu_trainer.export import session

    s = session(path, threads=2)
    out = []
    for im in images:
        b, sc, lab = s.run(list(OUTPUT_NAMES), {"image": preprocess([im], sidecar)})
        out.append((b[0], sc[0], lab[0]))
    return out


def _maps(test, raw, nms_iou):
    from cvcore import boxes as boxops
    from gpu_trainer.detection import coco_maps

    images = []
    for s, (b, sc, lab) in zip(test, raw, strict=True):
        dets = boxops.postprocess(b, sc, lab, nms_iou=nms_iou, min_score=0.01)
        images.append(
            {
                "key": s.key,
                "fold": 0,
                "width": s.image.width,
                "height": s.image.height,
                "truth": [[x[0], *x[1:]] for x in s.boxes],
                "detections": [list(d) for d in dets],
            }
        )
    return images, coco_maps(images, len(TAGS))


def run() -> dict:
    import torch

    from cvcore import boxes as boxops
    from cvcore.artifacts import Label
    from gpu_trainer.detection import OUTPUT_NAMES, DetExample, train_detector
    from gpu_trainer.export import export_onnx, quantize_int8
    from tests.support import scenes

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    train = scenes.dataset(TAGS, PER_TAG, seed=1, size=SCENE_SIZE)
    test = scenes.dataset(TAGS, TEST_PER_TAG, seed=2, size=SCENE_SIZE)
    small = scenes.dataset(TAGS, SMALL_PER_TAG, seed=3, size=SCENE_SIZE, scale=(0.1, 0.2), objects=(2, 4))
    labels = [
        Label(index=i, tag_id=f"00000000-0000-0000-0000-00000000000{i}", name=t) for i, t in enumerate(TAGS)
    ]
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    result = train_detector([DetExample(s.image, s.boxes, s.key) for s in train], labels)
    seconds = time.perf_counter() - started
    load_after = os.getloadavg()[0]
    side = result.sidecar
    with tempfile.TemporaryDirectory() as tmp:
        path, int8_path = os.path.join(tmp, "model.onnx"), os.path.join(tmp, "model.int8.onnx")
        export_onnx(result.model, side, path, [s.image for s in train[:4]], output_names=OUTPUT_NAMES)
        images, held_out = _maps(test, _outputs(path, side, [s.image for s in test]), side.nms_iou)
        small_maps = _maps(small, _outputs(path, side, [s.image for s in small]), side.nms_iou)[1]
        try:
            quantize_int8(path, int8_path, check=None)
            int8 = _maps(test, _outputs(int8_path, side, [s.image for s in test]), side.nms_iou)[1]
        except Exception as exc:
            int8 = {"error": str(exc)}
    perf = boxops.detection_performance({"labels": [vars(lab) for lab in labels], "images": images}, 0.5, 0.3)
    config = result.config
    return {
        "tags": list(TAGS),
        "train_images": len(train),
        "test_images": len(test),
        "runtime": "onnxruntime",
        "training_seconds": seconds,
        "cpu_threads": torch.get_num_threads(),
        "load_average": [load_before, load_after],
        **held_out,
        "int8": int8,
        "small": small_maps,
        "small_images": len(small),
        "precision_at_0_5": perf["precision"],
        "recall_at_0_5": perf["recall"],
        "cross_validated": {k: result.evaluation[k] for k in ("map30", "map50", "map75")},
        "config": {
            k: config[k]
            for k in (
                "recipe",
                "views_per_image",
                "feature_seconds",
                "final_steps",
                "steps_per_fold",
                "step_seconds",
                "folds",
            )
        },
    }


def report(r: dict) -> str:
    cv, c, q, sm = r["cross_validated"], r["config"], r.get("int8") or {}, r["small"]
    int8 = (
        f"mAP@30 {q['map30']:.3f}  mAP@50 {q['map50']:.3f}  mAP@75 {q['map75']:.3f}"
        if "map50" in q
        else f"failed: {q.get('error')}"
    )
    per_tag = r["train_images"] // len(r["tags"])
    load = r["load_average"]
    return (
        f"detection ({len(r['tags'])} tags x {per_tag} composed scenes, Quick, {r['cpu_threads']} CPU "
        f"threads, load average {load[0]:.1f} -> {load[1]:.1f})\n"
        f"  training {r['training_seconds']:.1f} s: backbone features {c['feature_seconds']:.1f} s, "
        f"{c['folds']}-fold evaluation ({c['steps_per_fold']} steps), final model "
        f"({c['final_steps']} steps, {c['step_seconds'] * 1000:.0f} ms/step)\n"
        f"  held-out {r['test_images']} scenes ({r['runtime']}): mAP@30 {r['map30']:.3f}  "
        f"mAP@50 {r['map50']:.3f} (target >= 0.6)  mAP@75 {r['map75']:.3f}; "
        f"at probability 0.5, overlap 0.3: precision {r['precision_at_0_5']:.3f}, "
        f"recall {r['recall_at_0_5']:.3f}\n"
        f"  cross-validated: mAP@30 {cv['map30']:.3f}  mAP@50 {cv['map50']:.3f}  "
        f"mAP@75 {cv['map75']:.3f}\n"
        f"  harder held-out: {r['small_images']} scenes of 2-4 small objects (10-20% of the shorter "
        f"side): "
        f"mAP@30 {sm['map30']:.3f}  mAP@50 {sm['map50']:.3f}  mAP@75 {sm['map75']:.3f}\n"
        f"  int8 graph (gpu_trainer.export.quantize_int8) on the held-out scenes: {int8}"
    )
