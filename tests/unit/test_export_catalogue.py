"""cvcore.exports: which platform/flavour pairs resolve, their defaults, and the refusals with reasons."""

import pytest

from cvcore import exports, layout, messages
from cvcore.artifacts import CLASSIFICATION, DETECTION


@pytest.mark.parametrize(
    "platform, flavor, expected",
    [
        ("ONNX", None, ("ONNX", "ONNX12")),
        ("onnx", "onnxint8", ("ONNX", "ONNXInt8")),
        ("DockerFile", None, ("DockerFile", "Linux")),
        ("dockerfile", "ARM", ("DockerFile", "ARM")),
    ],
)
def test_pairs_resolve_case_insensitively_with_defaults(platform, flavor, expected):
    target = exports.resolve(platform, flavor, CLASSIFICATION)
    assert (target.platform, target.flavor) == expected
    assert exports.resolve(platform, flavor, DETECTION) == target


@pytest.mark.parametrize(
    "platform, flavor, words",
    [
        ("DockerFile", "Windows", "Windows containers"),
        ("ONNX", "ONNX10", "opset"),
        ("VAIDK", None, "discontinued"),
        ("Nope", None, "platform: 'Nope' is not supported"),
        ("DockerFile", "TensorFlowLite", "not supported for DockerFile"),
        (None, None, "platform"),
    ],
)
def test_refusals_say_why(platform, flavor, words):
    with pytest.raises(exports.ExportRefused, match=words):
        exports.resolve(platform, flavor, CLASSIFICATION)


def test_every_target_has_a_distinct_zip_and_converted_ones_a_status_note():
    assert len({t.zip_name for t in exports.TARGETS}) == len(exports.TARGETS)
    for t in exports.TARGETS:
        assert (t.artifact and t.status) if t.made == exports.CONVERTED else not (t.artifact or t.status)
        assert exports.find(t.platform, t.flavor) is t


def test_export_jobs_name_only_converted_targets():
    p, i = layout.new_id(), layout.new_id()
    ok = messages.dumps(messages.ExportJob(p, i, "ONNXInt8"))
    assert messages.parse_work(ok).platform == "ONNX"
    with pytest.raises(messages.MessageError, match="DockerFile/Linux"):
        messages.parse_work(messages.dumps(messages.ExportJob(p, i, "Linux", platform="DockerFile")))
