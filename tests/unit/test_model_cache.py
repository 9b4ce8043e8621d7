import json
import threading
import time

import numpy as np
import pytest

from cvcore import artifacts, layout
from functions.prediction.session_cache import ModelCache, ModelUnavailable
from tests.support.tiny_models import tiny_classifier

SIDECAR = artifacts.ModelSidecar(
    task="classification",
    labels=[artifacts.Label(0, "a" * 8, "red"), artifacts.Label(1, "b" * 8, "blue")],
    input_size=(8, 8),
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    backbone="tiny",
    dataset_hash="h",
    classification_type="Multiclass",
)


class Blobs:
    def __init__(self, delay=0.0):
        self.items, self.reads, self.delay = {}, 0, delay

    def add(self, project, iteration):
        self.items[layout.iteration_artifact(project, iteration, layout.MODEL_ONNX)] = tiny_classifier()
        self.items[layout.iteration_artifact(project, iteration, layout.MODEL_SIDECAR)] = json.dumps(
            SIDECAR.to_json()
        ).encode()

    def read(self, container, name):
        self.reads += 1
        time.sleep(self.delay)
        return self.items[name]


def test_loads_once_and_predicts_with_the_shared_preprocessing():
    from PIL import Image

    blobs, p, it = Blobs(), layout.new_id(), layout.new_id()
    blobs.add(p, it)
    cache = ModelCache(blobs.read)
    model = cache.get(p, it)
    assert cache.get(p, it) is model and cache.loads == 1
    batch = artifacts.preprocess(
        [Image.new("RGB", (20, 10), (250, 10, 10)), Image.new("RGB", (8, 8), (0, 0, 255))], model.sidecar
    )
    (probs,) = model.session.run(["probabilities"], {"image": batch})
    assert np.argmax(probs, axis=1).tolist() == [0, 1]


def test_concurrent_first_calls_load_once():
    blobs, p, it = Blobs(delay=0.05), layout.new_id(), layout.new_id()
    blobs.add(p, it)
    cache = ModelCache(blobs.read)
    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(p, it))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.loads == 1 and blobs.reads == 2 and len({id(m) for m in got}) == 1


def test_bounded_least_recently_used_and_invalidation():
    blobs, p = Blobs(), layout.new_id()
    its = [layout.new_id() for _ in range(3)]
    for it in its:
        blobs.add(p, it)
    cache = ModelCache(blobs.read, max_models=2)
    cache.get(p, its[0]), cache.get(p, its[1]), cache.get(p, its[0]), cache.get(p, its[2])
    assert len(cache) == 2 and cache.loads == 3
    cache.get(p, its[0])  # still cached: it was used more recently than its[1]
    assert cache.loads == 3
    cache.get(p, its[1])  # evicted earlier: loads again
    assert cache.loads == 4
    cache.invalidate(p, its[1])
    cache.get(p, its[1])
    assert cache.loads == 5
    by_size = ModelCache(blobs.read, max_models=10, max_bytes=1)
    by_size.get(p, its[0]), by_size.get(p, its[1])
    assert len(by_size) == 1  # over the byte budget: only the newest stays


def test_a_missing_model_is_an_error_and_nothing_is_cached():
    cache = ModelCache(Blobs().read)
    with pytest.raises(ModelUnavailable):
        cache.get(layout.new_id(), layout.new_id())
    assert len(cache) == 0


def test_predictions_are_custom_vision_shaped_and_sorted():
    import io

    from PIL import Image

    from cvcore.imaging import ImageError
    from functions.prediction.predict import predict_bytes

    blobs, p, it = Blobs(), layout.new_id(), layout.new_id()
    blobs.add(p, it)
    model = ModelCache(blobs.read).get(p, it)
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 10, 240)).save(out, "PNG")
    preds = predict_bytes(model, out.getvalue())
    assert [x["tagName"] for x in preds] == ["blue", "red"] and preds[0]["probability"] > 0.9
    assert abs(sum(x["probability"] for x in preds) - 1) < 1e-5 and preds[0]["tagType"] == "Regular"
    with pytest.raises(ImageError):
        predict_bytes(model, b"not an image")
