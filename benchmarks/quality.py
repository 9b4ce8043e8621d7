"""Classification quality on few images: Fashion-MNIST (real product photos), 2, 5 and 10 images per class
(class-balanced, seeded), Quick training through gpu_trainer.classification.train_classifier, scored on
1,000 held-out t10k images by the exported ONNX graph in onnxruntime, fed by cvcore.artifacts.preprocess
(exactly what the prediction route does). Beside it, in the same run on the same images: the frozen-feature
linear-probe baseline (MobileNetV2 global pooled features at 224 px + logistic regression).

Targets: 10/class >= 0.82 top-1, 5/class >= 0.72.

Environment: QUALITY_PER_CLASS="2,5,10", QUALITY_BACKBONES="mobilenet_v2,efficientnet_lite0",
QUALITY_TEST=1000, QUALITY_SEED=0.
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

    return [Label(i, str(uuid.uuid5(uuid.NAMESPACE_URL, f"fashion/{name}")), name) for i, name in enumerate(fm.CLASSES)]


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
                out.append(b(images_to_tensor(images[s:s + 50], b, 224)).numpy())
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
    names = [v for v in os.environ.get("QUALITY_BACKBONES", "mobilenet_v2,efficientnet_lite0").split(",") if v]
    n_test = int(os.environ.get("QUALITY_TEST", "1000"))
    seed = int(os.environ.get("QUALITY_SEED", "0"))
    train_x, train_y = fm.load("train")
    test_x, test_y = fm.load("t10k")
    rng = np.random.default_rng(1234)
    test_idx = rng.choice(len(test_y), n_test, replace=False)
    test_images = [fm.as_rgb(test_x[i]) for i in test_idx]
    truth = test_y[test_idx].astype(int)
    labels = _labels()
    rows = []
    for per in per_classes:
        idx = fm.balanced_indices(train_y, per, seed=seed)
        images = [fm.as_rgb(train_x[i]) for i in idx]
        ys = train_y[idx].astype(int)
        examples = [Example(image=im, labels=(int(y),), key=f"fmnist-train-{i}") for im, y, i in zip(images, ys, idx)]
        probe = _probe(images, ys, test_images, truth)
        for name in names:
            t = time.perf_counter()
            result = train_classifier(examples, labels, multilabel=False, negative_index=None, backbone=name,
                                      device="cpu", seed=seed)
            train_s = time.perf_counter() - t
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.onnx"
                check = export_onnx(result.model, result.sidecar, path, images[:4])
                sess = session(path, threads=2)
                batch = preprocess(test_images, result.sidecar)
                probs = np.concatenate([sess.run(["probabilities"], {"image": batch[s:s + 100]})[0]
                                        for s in range(0, len(batch), 100)])
            top1 = float((probs.argmax(axis=1) == truth).mean())
            rows.append({"per_class": per, "images": len(examples), "backbone": name, "top1": top1,
                         "probe_top1": probe, "train_s": round(train_s, 2), "recipe": result.config["recipe"],
                         "resolution": result.config["resolution"], "c": result.config["c"],
                         "cv_top1": result.sidecar.metrics.get("top1"), "onnx_max_abs_diff": check["max_abs_diff"],
                         "candidates": result.config["candidates"], "target": TARGETS.get(per)})
    return {"test_images": n_test, "seed": seed, "rows": rows}


def report(result: dict) -> str:
    lines = [f"Fashion-MNIST quality (Quick training, ONNX via onnxruntime, {result['test_images']} t10k images)",
             f"{'per class':>9} {'backbone':<19} {'top-1':>6} {'probe':>6} {'target':>6} {'CV top-1':>8} "
             f"{'recipe':<9} {'train s':>7} {'onnx diff':>9}"]
    for r in result["rows"]:
        target = f"{r['target']:.2f}" if r.get("target") else "-"
        lines.append(f"{r['per_class']:>9} {r['backbone']:<19} {r['top1']:>6.3f} {r['probe_top1']:>6.3f} "
                     f"{target:>6} {r['cv_top1'] or 0:>8.3f} {r['recipe']:<9} {r['train_s']:>7.1f} "
                     f"{r['onnx_max_abs_diff']:>9.1e}")
    return "\n".join(lines)


if __name__ == "__main__":
    import json
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    out = run()
    print(report(out))
    print(json.dumps(out, indent=1, default=str))
