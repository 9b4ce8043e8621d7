"""Tiny real ONNX models (no torch, no training) and a helper that publishes one as a Completed iteration,
so prediction tests get a published model in milliseconds. The e2e and benchmark paths use trained ones."""

from __future__ import annotations

import json

import onnx
from onnx import TensorProto, helper

from cvcore import artifacts, layout, messages
from functions.domain.records import Iteration, utcnow
from functions.training import iterations, projects, tags

DETECTION_DOMAIN = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"
SIDE = 8


def _model(nodes, outputs, initializers) -> bytes:
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, SIDE, SIDE])
    model = helper.make_model(
        helper.make_graph(nodes, "tiny", [image], outputs, initializers),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def tiny_classifier() -> bytes:
    """image [N,3,8,8] -> mean colour -> 2 logits (red, blue) -> softmax."""
    weights = helper.make_tensor("w", TensorProto.FLOAT, [3, 2], [4.0, -4.0, 0.0, 0.0, -4.0, 4.0])
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["m"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["m", "w"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    return _model(
        nodes, [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])], [weights]
    )


def tiny_detector() -> bytes:
    """image [1,3,8,8] -> three fixed boxes; scores from the mean colour: red boxes (label 0) score with
    red, the blue box (label 1) with blue. Boxes 0 and 2 (both red) overlap, so NMS keeps one."""
    boxes = helper.make_tensor(
        "b", TensorProto.FLOAT, [1, 3, 4], [0.1, 0.1, 0.4, 0.4, 0.6, 0.5, 0.3, 0.4, 0.12, 0.1, 0.4, 0.4]
    )
    labels = helper.make_tensor("l", TensorProto.INT64, [1, 3], [0, 1, 0])
    weights = helper.make_tensor(
        "w", TensorProto.FLOAT, [3, 3], [4.0, -4.0, 3.0, 0.0, 0.0, 0.0, -4.0, 4.0, -3.0]
    )
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["m"], axes=[2, 3], keepdims=0),
        helper.make_node("MatMul", ["m", "w"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["scores"]),
        helper.make_node("Identity", ["b"], ["boxes"]),
        helper.make_node("Identity", ["l"], ["labels"]),
    ]
    outputs = [
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 3, 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3]),
        helper.make_tensor_value_info("labels", TensorProto.INT64, [1, 3]),
    ]
    return _model(nodes, outputs, [boxes, labels, weights])


def sidecar(task: str, tag_ids: list[str], names=("red", "blue")) -> artifacts.ModelSidecar:
    return artifacts.ModelSidecar(
        task=task,
        labels=[artifacts.Label(i, t, n) for i, (t, n) in enumerate(zip(tag_ids, names, strict=True))],
        input_size=(SIDE, SIDE),
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        backbone="tiny",
        dataset_hash="h",
        classification_type="Multiclass" if task == "classification" else None,
    )


def add_iteration(repo, blobs, project_id: str, model: bytes | None = None) -> str:
    """A Completed iteration of the project with a tiny model of the project's kind; returns its id."""
    project = repo.get_project(project_id)
    task = artifacts.DETECTION if project.is_detection else artifacts.CLASSIFICATION
    tag_ids = [t.id for t in repo.list_tags(project_id)]
    now = utcnow()
    it = Iteration(
        id=layout.new_id(),
        name=f"Iteration {len(repo.list_iterations(project_id)) + 1}",
        status=messages.COMPLETED,
        created=now,
        last_modified=now,
        domain_id=project.domain_id,
        classification_type=project.classification_type,
        training_type="Regular",
        trained_at=now,
        tag_ids=tag_ids,
    )
    repo.add_iteration(project_id, it)
    model = (
        model
        if model is not None
        else (tiny_detector() if task == artifacts.DETECTION else tiny_classifier())
    )
    blobs.put(
        layout.MODELS,
        layout.iteration_artifact(project_id, it.id, layout.MODEL_ONNX),
        model,
        "application/octet-stream",
    )
    blobs.put(
        layout.MODELS,
        layout.iteration_artifact(project_id, it.id, layout.MODEL_SIDECAR),
        json.dumps(sidecar(task, tag_ids).to_json()).encode(),
        "application/json",
    )
    return it.id


def published_project(
    repo, blobs, *, detection: bool = False, publish_name: str = "prod"
) -> tuple[str, str, list[str]]:
    """A project with tags red and blue and one iteration published as `publish_name`:
    (project id, iteration id, [red tag id, blue tag id])."""
    project = projects.create_project(
        repo, f"tiny-{layout.new_id()[:8]}", None, DETECTION_DOMAIN if detection else None, None, []
    )
    tag_ids = [tags.create_tag(repo, project["id"], name, None, None)["id"] for name in ("red", "blue")]
    iteration_id = add_iteration(repo, blobs, project["id"])
    iterations.publish(repo, project["id"], iteration_id, publish_name, None, False)
    return project["id"], iteration_id, tag_ids
