"""TensorFlow exports: gpu_trainer/onnx_tf.py translates the exported classifier graph, converters write a
SavedModel and a TFLite file and check them (loaded back, as a user would) against onnxruntime on real photos."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from cvcore import exports
from cvcore.artifacts import preprocess
from gpu_trainer import converters, export
from gpu_trainer.onnx_tf import UnsupportedGraph, to_module
from tests.trainer.test_classification import ASTRONAUT, CHELSEA, COFFEE, photo, trained_two_photos

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    result, examples = trained_two_photos()
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export.export_onnx(result.model, result.sidecar, path, [ex.image for ex in examples[:3]])
    sample = preprocess([ex.image for ex in examples[:4]], result.sidecar)
    return result, path, sample


def _unseen(result):
    return preprocess([photo(ASTRONAUT, 71), photo(COFFEE, 72), photo(CHELSEA, 73)], result.sidecar)


def test_savedmodel_is_checked_on_real_images_and_its_files_are_the_catalogues(exported, tmp_path):
    import tensorflow as tf

    result, path, sample = exported
    found = converters.to_savedmodel(path, tmp_path, sample, "classification")
    assert (
        found["samples"] == len(sample) and found["max_abs_diff"] <= 1e-5 and found["top1_agreement"] == 1.0
    )
    assert found["runtime"].startswith("tensorflow ")
    written = {
        str(p.relative_to(tmp_path / "saved_model"))
        for p in (tmp_path / "saved_model").rglob("*")
        if p.is_file()
    }
    assert written == set(exports.SAVEDMODEL_FILES)  # what the export's zip will carry, file for file
    serve = tf.saved_model.load(str(tmp_path / "saved_model")).signatures["serving_default"]
    x = _unseen(result)
    want = export.session(path).run(["probabilities"], {"image": x})[0]
    got = serve(image=tf.constant(x))["probabilities"].numpy()
    assert np.abs(got - want).max() <= 1e-4 and (got.argmax(1) == want.argmax(1)).all()


def test_tflite_runs_in_litert_like_onnx_on_images_it_was_not_checked_on(exported, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    result, path, sample = exported
    found = converters.to_tflite(path, tmp_path, sample, "classification")
    assert found["max_abs_diff"] <= 1e-5 and found["runtime"].startswith("litert ")
    run = Interpreter(model_path=str(tmp_path / "model.tflite")).get_signature_runner("serving_default")
    x = _unseen(result)
    want = export.session(path).run(["probabilities"], {"image": x})[0]
    for i in range(len(x)):
        got = run(image=x[i : i + 1])["probabilities"]
        assert np.abs(got - want[i : i + 1]).max() <= 1e-4 and got.argmax() == want[i].argmax()


class Layouts(torch.nn.Module):
    """Operators in the forms the translator must get right across NCHW / NHWC: a strided padded conv, a
    depthwise conv, a channel concat, a per-channel constant, a channel reduction, a linear layer."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.b = torch.nn.Conv2d(3, 8, 5, stride=2, padding=2, bias=False)
        self.dw = torch.nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.scale = torch.nn.Parameter(torch.linspace(0.5, 2.0, 16).view(1, 16, 1, 1))
        self.fc = torch.nn.Linear(16 + 1, 5)

    def forward(self, x):
        y = torch.cat([torch.nn.functional.relu6(self.a(x)), torch.sigmoid(self.b(x))], dim=1)
        y = self.dw(y) * self.scale + 0.25
        energy = y.mean(dim=1, keepdim=True).abs().mean(dim=(2, 3))  # [N, 1]: a reduction over C, then H, W
        pooled = y.mean(dim=(2, 3))
        return torch.softmax(self.fc(torch.cat([pooled, energy], dim=1)) / 0.7, dim=1)


def test_layout_tracking_matches_onnxruntime_on_a_graph_with_every_form(tmp_path):
    import tensorflow as tf

    path = tmp_path / "layouts.onnx"
    torch.onnx.export(
        Layouts().eval(),
        (torch.zeros(1, 3, 32, 40),),
        str(path),
        input_names=["image"],
        output_names=["probabilities"],
        dynamic_axes={"image": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    x = np.random.default_rng(1).normal(size=(3, 3, 32, 40)).astype(np.float32)
    want = export.session(path).run(["probabilities"], {"image": x})[0]
    got = to_module(path).serve(tf.constant(x))["probabilities"].numpy()
    assert got.shape == (3, 5) and np.abs(got - want).max() <= 1e-5


def test_a_graph_with_an_operator_it_does_not_translate_is_refused_by_name(tmp_path):
    x = onnx.helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, ["batch", 3, 8, 8])
    y = onnx.helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, ["batch", 3, 8, 8])
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Erf", ["image"], ["e"]), onnx.helper.make_node("Hardmax", ["e"], ["out"])],
        "g",
        [x],
        [y],
    )
    path = tmp_path / "odd.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(UnsupportedGraph, match="Erf, Hardmax"):
        to_module(path)


def test_detectors_and_coreml_are_refused_with_the_reason():
    with pytest.raises(exports.ExportRefused, match="object detectors are not translated to TensorFlow"):
        exports.resolve("TensorFlow", "TensorFlowLite", "detection")
    with pytest.raises(exports.ExportRefused, match="no CoreML runtime exists off Apple hardware"):
        exports.resolve("CoreML", None, "classification")
    assert exports.resolve("TensorFlow", None, "classification").slug == "TensorFlowNormal"
    assert "TensorFlow" in exports.platforms("classification") and "TensorFlow" not in exports.platforms(
        "detection"
    )
