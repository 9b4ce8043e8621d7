"""The model doctor against known problems injected into real photos (Fashion-MNIST, upscaled to 64 px):
5% flipped labels, 10 near-duplicate pairs across tags, one tag whose images all share a coloured background,
one tag with 8 images beside others with 60, one tag whose photos all come from one camera (EXIF make and
model, as the manifest carries them; the others from three phones at random). Reported: precision / recall of each diagnosis against what was
injected, the findings on the same set without injections (false alarms), the doctor's time as a share of
the training time, and the learning curve's prediction (from 30 images per tag, for 60) against the top-1
actually reached with 60 per tag. Environment: DOCTOR_SEEDS (default "0,1"), DOCTOR_PER_TAG (60)."""

from __future__ import annotations

import io
import os
import time
import uuid

import numpy as np
from PIL import Image

SMALL_TAG, COLOURED_TAG, CAMERA_TAG = (
    3,
    8,
    7,
)  # Dress: 8 images; Bag: all on a red background; Sneaker: one camera
CAMERA, PHONES = "Canon EOS 5D", ("Google Pixel 7", "Apple iPhone 13", "samsung SM-S911B")
FLIP_SHARE, DUP_PAIRS, SMALL_COUNT = 0.05, 10, 8
COLOUR = (200, 40, 40)


def _labels():
    from cvcore.artifacts import Label
    from tests.support import fashion_mnist as fm

    return [
        Label(i, str(uuid.uuid5(uuid.NAMESPACE_URL, f"fashion/{name}")), name)
        for i, name in enumerate(fm.CLASSES)
    ]


def _image(pixels: np.ndarray, background=None) -> Image.Image:
    from tests.support import fashion_mnist as fm

    image = fm.as_rgb(pixels)
    if background is None:
        return image
    rgb = np.asarray(image).copy()
    mask = np.asarray(image.convert("L")) < 12
    rgb[mask] = background
    return Image.fromarray(rgb)


def _near_copy(image: Image.Image, seed: int) -> Image.Image:
    """A re-saved, slightly cropped and brightened copy (what a second upload of the same photo looks like)."""
    w, h = image.size
    copy = image.crop((1, 1, w - 1, h - 1)).resize((w, h), Image.BILINEAR)
    copy = Image.fromarray(np.clip(np.asarray(copy, np.float32) * 1.04 + 2, 0, 255).astype(np.uint8))
    out = io.BytesIO()
    copy.save(out, "JPEG", quality=88)
    return Image.open(io.BytesIO(out.getvalue())).convert("RGB")


def build(per_tag: int, seed: int, inject: bool):
    """Examples (key = an image id) and what was injected."""
    from gpu_trainer.classification import Example
    from tests.support import fashion_mnist as fm

    x, y = fm.load("train")
    rng = np.random.default_rng(seed)
    idx = fm.balanced_indices(y, per_tag, seed=seed)
    rows = []  # (image, true tag, key)
    for i in idx:
        tag = int(y[i])
        if inject and tag == SMALL_TAG and sum(1 for r in rows if r[1] == SMALL_TAG) >= SMALL_COUNT:
            continue
        rows.append((_image(x[i], COLOUR if inject and tag == COLOURED_TAG else None), tag, f"img-{i}"))
    truth = {
        "flipped": set(),
        "dup_copies": set(),
        "dup_pairs": set(),
        "coloured": fm.CLASSES[COLOURED_TAG],
        "small": fm.CLASSES[SMALL_TAG],
    }
    given = {key: tag for _, tag, key in rows}
    if inject:
        candidates = [r for r in rows if r[1] not in (SMALL_TAG,)]
        for _im, tag, key in [
            candidates[j]
            for j in rng.choice(len(candidates), int(round(FLIP_SHARE * len(rows))), replace=False)
        ]:
            given[key] = int(rng.choice([t for t in range(len(fm.CLASSES)) if t != tag]))
            truth["flipped"].add(key)
        sources = [r for r in rows if r[2] not in truth["flipped"] and r[1] not in (SMALL_TAG,)]
        for n, j in enumerate(rng.choice(len(sources), DUP_PAIRS, replace=False)):
            im, tag, key = sources[j]
            other = int(rng.choice([t for t in range(len(fm.CLASSES)) if t not in (tag, SMALL_TAG)]))
            copy_key = f"dup-{n}-of-{key}"
            rows.append((_near_copy(im, n), tag, copy_key))
            given[copy_key] = other
            truth["dup_copies"].add(copy_key)
            truth["dup_pairs"].add(frozenset((key, copy_key)))
    examples = [Example(image=im, labels=(given[key],), key=key) for im, _, key in rows]
    truth["true_tag"] = {key: tag for _, tag, key in rows}
    truth["given"] = given
    truth["camera"] = fm.CLASSES[CAMERA_TAG]
    # The manifest's properties per image: the camera tag's photos from one camera, all others' from any phone.
    truth["properties"] = {
        key: {
            "format": "PNG",
            "camera": CAMERA
            if inject and given[key] == CAMERA_TAG
            else PHONES[int(rng.integers(len(PHONES)))],
        }
        for _, _, key in rows
    }
    return examples, truth


def _train(examples, seed: int, properties: dict | None = None):
    from gpu_trainer.classification import train_classifier
    from gpu_trainer.doctor import diagnose_classifier
    from gpu_trainer.features import MemoryFeatureCache
    from gpu_trainer.job import DOCTOR_MIN_SECONDS, DOCTOR_SHARE

    cache = MemoryFeatureCache()
    t = time.perf_counter()
    result = train_classifier(
        examples, _labels(), multilabel=False, negative_index=None, device="cpu", seed=seed, cache=cache
    )
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    advice = diagnose_classifier(
        examples,
        result.evidence,
        cache=cache,
        budget_seconds=max(DOCTOR_MIN_SECONDS, DOCTOR_SHARE * train_s),
        properties=properties,
    )
    return result, advice, train_s, time.perf_counter() - t


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _drift(result, seed: int) -> dict:
    """The train-vs-field check on 40 'stored predictions' like the training set (Fashion-MNIST test images)
    and on 40 unlike it (real photos of other things)."""
    from gpu_trainer import doctor
    from tests.support import fashion_mnist as fm
    from tests.support.images import photo_image

    x, _ = fm.load("t10k")
    rng = np.random.default_rng(seed)
    alike = [_png(fm.as_rgb(x[i])) for i in rng.choice(len(x), 40, replace=False)]
    unlike = [_png(photo_image(int(i), (64, 64))) for i in rng.choice(5000, 40, replace=False)]
    out = {}
    for name, images in (("alike", alike), ("unlike", unlike)):
        field = [(f"{name}-{n}", lambda data=data: data) for n, data in enumerate(images)]
        found = doctor.drift(result.evidence, *doctor.field_features(result.evidence, field))
        out[name] = found[0].numbers["share_unlike"] if found else None
    return out


def _kinds(advice) -> dict[str, dict]:
    return {f["kind"]: f for f in advice["findings"]}


def _pr(found: set, truth: set) -> dict:
    tp = len(found & truth)
    return {
        "found": len(found),
        "true": len(truth),
        "precision": round(tp / len(found), 3) if found else None,
        "recall": round(tp / len(truth), 3) if truth else None,
    }


def run() -> dict:
    seeds = [int(s) for s in os.environ.get("DOCTOR_SEEDS", "0,1").split(",") if s]
    per_tag = int(os.environ.get("DOCTOR_PER_TAG", "60"))
    runs = []
    for seed in seeds:
        examples, truth = build(per_tag, seed, inject=True)
        result, advice, train_s, doctor_s = _train(examples, seed, truth["properties"])
        kinds = _kinds(advice)
        suspects = {
            s["image_id"] for s in (kinds.get("label_errors") or {}).get("numbers", {}).get("suspects", [])
        }
        pairs = {
            frozenset(p["images"])
            for p in (kinds.get("duplicates_across_tags") or {}).get("numbers", {}).get("pairs", [])
        }
        shortcut = [f for f in advice["findings"] if f["kind"] == "shortcut"]
        injected = {
            "label_errors": _pr(suspects, truth["flipped"] | truth["dup_copies"]),
            "label_errors_flips_only": _pr(suspects - truth["dup_copies"], truth["flipped"]),
            "duplicates_across_tags": _pr(pairs, truth["dup_pairs"]),
            # a natural pair of near-identical photos whose tags differ only because one was flipped is a real
            # contradiction too
            "duplicates_across_tags_real": _pr(
                pairs,
                truth["dup_pairs"]
                | {
                    p
                    for p in pairs
                    if len({truth["true_tag"][k] for k in p}) == 1
                    and len({truth["given"][k] for k in p}) == 2
                },
            ),
            "background_bias_found": any(
                truth["coloured"] in f["tags"] and f["numbers"]["view"] == "background" for f in shortcut
            ),
            "background_false_tags": sorted(
                {t for f in shortcut if f["numbers"]["view"] != "camera" for t in f["tags"]}
                - {truth["coloured"]}
            ),
            "camera_bias_found": any(
                truth["camera"] in f["tags"] and f["numbers"]["view"] == "camera" for f in shortcut
            ),
            "camera_false_tags": sorted(
                {t for f in shortcut if f["numbers"]["view"] == "camera" for t in f["tags"]}
                - {truth["camera"]}
            ),
            "imbalance_found": truth["small"] in (kinds.get("balance") or {}).get("tags", []),
            "kinds": sorted(kinds),
            "train_s": round(train_s, 2),
            "doctor_s": round(doctor_s, 2),
            "doctor_share": round(doctor_s / train_s, 3),
            "checks": advice["checks"],
        }
        clean_examples, clean_truth = build(per_tag, seed, inject=False)
        clean, clean_advice, clean_train_s, clean_doctor_s = _train(
            clean_examples, seed, clean_truth["properties"]
        )
        drifted = _drift(clean, seed)
        half_examples, _ = build(per_tag // 2, seed, inject=False)
        _, half_advice, _, _ = _train(half_examples, seed)
        predicted = half_advice["learning_curve"]
        actual = clean_advice["learning_curve"]
        runs.append(
            {
                "seed": seed,
                "images": len(examples),
                "injected": injected,
                "clean": {
                    "kinds": sorted(_kinds(clean_advice)),
                    "findings": [
                        (f["kind"], f["severity"], len(f["image_ids"])) for f in clean_advice["findings"]
                    ],
                    "train_s": round(clean_train_s, 2),
                    "doctor_s": round(clean_doctor_s, 2),
                    "doctor_share": round(clean_doctor_s / clean_train_s, 3),
                    "drift_share_unlike": drifted,
                },
                "learning_curve": {
                    "from_per_tag": per_tag // 2,
                    "top1_then": predicted.get("model_top1"),
                    "predicted_when_doubled": predicted.get("predicted_top1_when_doubled"),
                    "plus_minus": predicted.get("plus_minus"),
                    "actual_with_doubled": actual.get("model_top1"),
                    "error": round(predicted["predicted_top1_when_doubled"] - actual["model_top1"], 4)
                    if "model_top1" in actual and "predicted_top1_when_doubled" in predicted
                    else None,
                },
            }
        )
    return {"per_tag": per_tag, "runs": runs}


def report(r: dict) -> str:
    lines = [f"doctor: Fashion-MNIST, {r['per_tag']} per tag, injected problems vs what the doctor found"]
    for run in r["runs"]:
        inj, clean, lc = run["injected"], run["clean"], run["learning_curve"]
        le, dup = inj["label_errors"], inj["duplicates_across_tags"]
        lines += [
            f"  seed {run['seed']} ({run['images']} images): label errors precision {le['precision']} recall "
            f"{le['recall']} ({le['found']} flagged, {le['true']} wrong; flips only: "
            f"{inj['label_errors_flips_only']['precision']} / {inj['label_errors_flips_only']['recall']}); "
            f"duplicate pairs across tags precision {dup['precision']} recall {dup['recall']} (counting natural "
            f"pairs split by a flip: {inj['duplicates_across_tags_real']['precision']}); background bias "
            f"found {inj['background_bias_found']} (other tags flagged: {inj['background_false_tags'] or 'none'}); "
            f"camera bias found {inj['camera_bias_found']} (other tags: {inj['camera_false_tags'] or 'none'}); "
            f"imbalance found {inj['imbalance_found']}; doctor {inj['doctor_s']} s = {inj['doctor_share']:.0%} of "
            f"training {inj['train_s']} s",
            f"    clean set findings: {clean['findings'] or 'none'} (doctor {clean['doctor_share']:.0%} of "
            f"training); drift on 40 field images like the set: "
            f"{'found' if clean['drift_share_unlike']['alike'] else 'none'}, on 40 unlike it: "
            f"{clean['drift_share_unlike']['unlike'] or 'not found'} of them unlike",
            f"    learning curve from {lc['from_per_tag']}/tag: top-1 {lc['top1_then']}, predicted with twice the "
            f"images {lc['predicted_when_doubled']} +- {lc['plus_minus']}, actual {lc['actual_with_doubled']} "
            f"(error {lc['error']})",
        ]
    return "\n".join(lines)
