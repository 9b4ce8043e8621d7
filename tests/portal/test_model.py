"""The model side of the portal: export a compact iteration and download its zip (an ONNX model that
onnxruntime runs), the export button's absence for a non-compact domain, and an Advanced training whose
job fails shows the trainer's reason on the Performance page."""

import zipfile

import numpy as np
import onnxruntime as ort
import pytest
from azure.storage.blob import BlobServiceClient

from cvcore import layout
from tests.portal.conftest import upload, wait_trained

pytestmark = pytest.mark.portal


def test_export_a_compact_iteration_and_download_a_model_that_runs(page, sdk, classifier, tmp_path):
    project, tags, it = classifier
    page.goto(page.url.split("#")[0] + f"#/p/{project.id}/performance/{it.id}")
    page.get_by_role("button", name="Export", exact=True).click()
    box = page.locator("dialog[open]")
    box.get_by_text("No exports yet.").wait_for()
    offered = box.get_by_label("Export flavour").locator("option").evaluate_all("os => os.map(o => o.value)")
    assert offered[0] == "ONNX|ONNX12" and {"OpenVino|", "TensorFlow|TensorFlowLite"} <= set(offered)
    box.locator("[data-action=start-export]").click()
    link = box.get_by_role("link", name="Download")
    link.wait_for(timeout=120_000)
    assert box.locator(".badge", has_text="Done").count() == 1
    with page.expect_download() as got:
        link.click()
    path = tmp_path / "export.zip"
    got.value.save_as(path)
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        model = next(n for n in names if n.endswith(".onnx"))
        session = ort.InferenceSession(z.read(model), providers=["CPUExecutionProvider"])
        labels = next((z.read(n).decode() for n in names if n.endswith("labels.txt")), "")
    assert set(labels.split()) == set(tags)
    (inp,) = session.get_inputs()
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    out = session.run(None, {inp.name: np.zeros(shape, dtype=np.float32)})
    assert out and np.asarray(out[0]).size >= len(tags)
    # A second export, the Linux edge container, is listed beside the first with its own link.
    box.get_by_label("Export flavour").select_option("DockerFile|Linux")
    box.locator("[data-action=start-export]").click()
    box.get_by_role("link", name="Download").nth(1).wait_for()
    with page.expect_download() as got:
        box.get_by_role("link", name="Download").nth(1).click()
    got.value.save_as(tmp_path / "edge.zip")
    with zipfile.ZipFile(tmp_path / "edge.zip") as z:
        assert {"Dockerfile", "app/server.py", "app/model.onnx"} <= set(z.namelist())
    assert {(e.platform, e.status) for e in sdk.get_exports(project.id, it.id)} == {
        ("ONNX", "Done"),
        ("DockerFile", "Done"),
    }


def test_a_general_domain_iteration_offers_no_export_and_says_why(page, sdk):
    project = sdk.create_project(f"general-{layout.new_id()[:8]}", classification_type="Multiclass")
    try:
        tags = [sdk.create_tag(project.id, n).id for n in ("a", "b")]
        upload(sdk, project.id, 0, 5, [tags[0]])
        upload(sdk, project.id, 500, 5, [tags[1]])
        it = wait_trained(sdk, project.id, sdk.train_project(project.id).id)
        assert it.status == "Completed" and not it.exportable
        page.goto(page.url.split("#")[0] + f"#/p/{project.id}/performance/{it.id}")
        page.locator(".export-note", has_text="compact domain").wait_for()
        assert page.get_by_role("button", name="Export", exact=True).count() == 0
    finally:
        sdk.delete_project(project.id)


def test_advanced_training_with_a_budget_whose_images_vanished_shows_the_reason(page, sdk, stack):
    project = sdk.create_project(f"adv-{layout.new_id()[:8]}", classification_type="Multiclass")
    try:
        tags = [sdk.create_tag(project.id, n).id for n in ("a", "b")]
        upload(sdk, project.id, 0, 5, [tags[0]])
        upload(sdk, project.id, 500, 5, [tags[1]])
        # The originals go missing behind the API's back (a storage fault): the job cannot read them.
        container = BlobServiceClient.from_connection_string(stack.conn).get_container_client(layout.IMAGES)
        for image in sdk.get_tagged_images(project.id, take=50):
            container.delete_blob(layout.image_original(project.id, image.id))
        page.goto(page.url.split("#")[0] + f"#/p/{project.id}/images")
        page.locator("[data-action=train]").click()
        box = page.locator("dialog[open]")
        box.get_by_label("Advanced training", exact=False).check()
        box.get_by_label("Training budget (hours, Advanced only)").fill("2")
        box.get_by_role("button", name="Train").click()
        alert = page.locator(".error[role=alert]", has_text="datasetCorrupt")
        alert.wait_for(timeout=180_000)
        assert "unreadable" in alert.inner_text() or "missing" in alert.inner_text()
        (it,) = sdk.get_iterations(project.id)
        assert it.status == "Failed" and it.training_type == "Advanced" and it.reserved_budget_in_hours == 2
        assert it.training_error_details and it.training_error_details in alert.inner_text()
    finally:
        sdk.delete_project(project.id)


def test_settings_set_the_notification_queue_and_show_a_refusal(page, sdk, stack):
    import json

    from azure.storage.queue import QueueServiceClient

    from cvcore.storage import base64_queue

    queues = QueueServiceClient.from_connection_string(stack.conn)
    queue = base64_queue(queues.create_queue(f"portal-{layout.new_id()[:8]}"))
    project = sdk.create_project(f"integr-{layout.new_id()[:8]}")
    try:
        page.goto(page.url.split("#")[0] + f"#/p/{project.id}/settings")
        field = page.get_by_label("Notification queue URI")
        field.fill(f"{queues.url.rstrip('/')}/no-such-queue")
        page.get_by_role("button", name="Save changes").click()
        page.locator(".error[role=alert]", has_text="does not exist").wait_for()
        assert sdk.get_project(project.id).settings.notification_queue_uri is None
        uri = f"{queues.url.rstrip('/')}/{queue.queue_name}"
        field.fill(uri)
        page.get_by_role("button", name="Save changes").click()
        page.get_by_text("Settings saved.").wait_for()
        assert sdk.get_project(project.id).settings.notification_queue_uri == uri
        (message,) = queue.receive_messages(max_messages=5)
        assert json.loads(message.content)["type"] == "ConnectionTest"
        assert page.get_by_label("Notification queue URI").input_value() == uri  # shown after the reload
    finally:
        sdk.delete_project(project.id)


def test_performance_shows_the_model_doctors_findings(page, sdk, classifier):
    import requests

    from cvcore import settings

    project, tags, it = classifier
    page.goto(page.url.split("#")[0] + f"#/p/{project.id}/performance/{it.id}")
    advice = page.get_by_role("region", name="How to improve this model")
    finding = advice.locator("li.finding[data-kind=quantity]")
    finding.wait_for()
    assert "fewer than the 50 images per tag" in finding.inner_text() and "'left' (6)" in finding.inner_text()
    assert finding.locator(".badge").inner_text() == "medium"  # 6 per tag: under 50, above the minimum of 5
    api = requests.get(
        f"{sdk.config.endpoint}/customvision/v3.3/training/projects/{project.id}/iterations/{it.id}/advice",
        headers={"Training-Key": settings.LOCAL_TRAINING_KEY},
        timeout=10,
    ).json()
    assert advice.locator("li.finding").count() == len(api["findings"])
