"""Classification quality on few images: Fashion-MNIST (real product photos), 2, 5 and 10 images per class
(class-balanced, seeded), Quick training through gpu_trainer.classification.train_classifier, scored on
1,000 held-out t10k images by the exported ONNX graph in onnxruntime, fed by cvcore.artifacts.preprocess
(exactly what the prediction route does). Beside it, in the same run on the same images: the frozen-feature
linear-probe baseline (MobileNetV2 global pooled features at 224 px + logistic regression).

Targets: 10/class >= 0.82 top-1, 5/class >= 0.72.

Quick training may pick another backbone than the one asked for when cross-validation clearly prefers it, so
each row says what was asked and what was chosen (recipe, backbone, features). The 1,000 test images are the
same for every row.

Environment: QUALITY_PER_CLASS="2,5,10", QUALITY_BACKBONES="mobilenet_v2" (the default domain's backbone;
add efficientnet_lite0, the Retail domain's), QUALITY_TEST=1000, QUALITY_SEEDS="0" (several seeds: several
training draws, and a mean row per size), QUALITY_ADVANCED_SECONDS (when set, each row is also trained with
Advanced training on that budget, beside Quick).
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

TARGETS = {10: 0.82, 5: 0.72}


def _labels():
    from cvcore.artifacts import Label
    from tests.support import fashion_mnist as fm

    return [
        Label(i, str(uuid.uuid5(uuid.NAMESPACE_URL, f"fashion/{name}")), name)
        for i, name in enumerate(fm.CLASSES)
    ]


def _probe(train_images, train_y, test_images, test_y) -> float:
    """Frozen MobileNetV2 (final pooled 1280 features, 224 px) + standardised logistic regression."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from gpu_trainer import backbones
    from gpu_trainer.features import images_to_tensor

    b = backbones.create("mobilenet_v2")

    def feats(images):
        out = []
        with torch.no_grad():
            for s in range(0, len(images), 50):
                out.append(b(images_to_tensor(images[s : s + 50], b, 224)).numpy())
        return np.concatenate(out)

    a, t = feats(train_images), feats(test_images)
    scaler = StandardScaler().fit(a)
    clf = LogisticRegression(max_iter=5000).fit(scaler.transform(a), train_y)
    return float((clf.predict(scaler.transform(t)) == test_y).mean())


def run() -> dict:
    from cvcore.artifacts import preprocess
    from gpu_trainer.classification import Example, train_classifier
    from gpu_trainer.export import export_onnx, session
    from tests.support import fashion_mnist as fm

    per_classes = [int(v) for v in os.environ.get("QUALITY_PER_CLASS", "2,5,10").split(",") if v]
    names = [v for v in os.environ.get("QUALITY_BACKBONES", "mobilenet_v2").split(",") if v]
    n_test = int(os.environ.get("QUALITY_TEST", "1000"))
    seeds = [
        int(v) for v in os.environ.get("QUALITY_SEEDS", os.environ.get("QUALITY_SEED", "0")).split(",") if v
    ]
    advanced_s = float(os.environ.get("QUALITY_ADVANCED_SECONDS", "0"))  # also Advanced training, this budget
    train_x, train_y = fm.load("train")
    test_x, test_y = fm.load("t10k")
    rng = np.random.default_rng(1234)
    test_idx = rng.choice(len(test_y), n_test, replace=False)
    test_images = [fm.as_rgb(test_x[i]) for i in test_idx]
    truth = test_y[test_idx].astype(int)
    labels = _labels()
    rows = []
    for per, seed in [(p, s) for p in per_classes for s in seeds]:
        idx = fm.balanced_indices(train_y, per, seed=seed)
        images = [fm.as_rgb(train_x[i]) for i in idx]
        ys = train_y[idx].astype(int)
        examples = [
            Example(image=im, labels=(int(y),), key=f"fmnist-train-{i}")
            for im, y, i in zip(images, ys, idx, strict=True)
        ]
        probe = _probe(images, ys, test_images, truth)
        for name, advanced in [(n, False) for n in names] + [(n, True) for n in names if advanced_s]:
            t = time.perf_counter()
            result = train_classifier(
                examples,
                labels,
                multilabel=False,
                negative_index=None,
                backbone=name,
                device="cpu",
                seed=seed,
                advanced=advanced,
                budget_seconds=advanced_s if advanced else None,
            )
            train_s = time.perf_counter() - t
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.onnx"
                check = export_onnx(result.model, result.sidecar, path, images[:4])
                sess = session(path, threads=2)
                batch = preprocess(test_images, result.sidecar)
                probs = np.concatenate(
                    [
                        sess.run(["probabilities"], {"image": batch[s : s + 100]})[0]
                        for s in range(0, len(batch), 100)
                    ]
                )
            top1 = float((probs.argmax(axis=1) == truth).mean())
            rows.append(
                {
                    "per_class": per,
                    "seed": seed,
                    "images": len(examples),
                    "backbone": name + (" (Advanced)" if advanced else ""),
                    "top1": top1,
                    "probe_top1": probe,
                    "train_s": round(train_s, 2),
                    "recipe": result.config["recipe"],
                    "chosen_backbone": result.config["backbone"],
                    "features": result.config["features"],
                    "resolution": result.config["resolution"],
                    "c": result.config["c"],
                    "cv_top1": result.sidecar.metrics.get("top1"),
                    "onnx_max_abs_diff": check["max_abs_diff"],
                    "candidates": result.config["candidates"],
                    "target": TARGETS.get(per),
                }
            )
    means = []
    asked = names + [f"{n} (Advanced)" for n in names if advanced_s]
    for per in per_classes:
        for name in asked:
            sel = [r for r in rows if r["per_class"] == per and r["backbone"] == name]
            means.append(
                {
                    "per_class": per,
                    "backbone": name,
                    "seeds": len(sel),
                    "top1": float(np.mean([r["top1"] for r in sel])),
                    "probe_top1": float(np.mean([r["probe_top1"] for r in sel])),
                    "target": TARGETS.get(per),
                    "meets_target": (float(np.mean([r["top1"] for r in sel])) >= TARGETS[per])
                    if per in TARGETS
                    else None,
                }
            )
    return {"test_images": n_test, "seeds": seeds, "rows": rows, "means": means}


def report(result: dict) -> str:
    lines = [
        f"Fashion-MNIST quality (Quick training, ONNX via onnxruntime, {result['test_images']} t10k images)",
        f"{'per class':>9} {'seed':>4} {'asked':<18} {'top-1':>6} {'probe':>6} {'target':>6} {'CV top-1':>8} "
        f"{'chosen':<34} {'train s':>7} {'onnx diff':>9}",
    ]
    for r in result["rows"]:
        target = f"{r['target']:.2f}" if r.get("target") else "-"
        chosen = f"{r['recipe']} {r['chosen_backbone']} {r['features']}"
        lines.append(
            f"{r['per_class']:>9} {r['seed']:>4} {r['backbone']:<18} {r['top1']:>6.3f} {r['probe_top1']:>6.3f} "
            f"{target:>6} {r['cv_top1'] or 0:>8.3f} {chosen:<34} {r['train_s']:>7.1f} "
            f"{r['onnx_max_abs_diff']:>9.1e}"
        )
    if len(result.get("seeds", [])) > 1:
        lines.append("means over seeds:")
        for m in result["means"]:
            target = f"{m['target']:.2f}" if m.get("target") else "-"
            lines.append(
                f"{m['per_class']:>9} {'':>4} {m['backbone']:<18} {m['top1']:>6.3f} {m['probe_top1']:>6.3f} "
                f"{target:>6}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    import json
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    out = run()
    print(report(out))
    print(json.dumps(out, indent=1, default=str))
