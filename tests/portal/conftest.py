"""Browser tests of the portal: real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)
against the local functions host and trainer worker on Azurite, the same stack `make run` starts.

Fixtures
    stack       (session) .url of the host, .conn of Azurite; a trainer worker runs beside it
    sdk         (session) the official SDK's training client on that host, to arrange data fast
    page        a fresh browser tab, signed in with the local training key, at /portal/; at the end the test
                fails if the page threw an uncaught error (a stack trace a person would never see is still a bug)
    shot        shot(page, "name") saves a full-page screenshot under SCREENSHOTS (the README names it)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)
from msrest.authentication import ApiKeyCredentials

from cvcore import layout, settings
from cvcore.settings import LOCAL_PREDICTION_KEY, LOCAL_TRAINING_KEY
from tests.support import images as imgs
from tests.support.localhost import running_host, running_trainer
from tests.support.training import wait_trained

pytestmark = pytest.mark.portal
CHROMIUM = os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
COMPACT = "0732100f-1a38-4e49-a514-c9b44c697ab5"  # General (compact): exportable
SCREENSHOTS = Path(
    os.environ.get("PORTAL_SCREENSHOTS", Path(__file__).resolve().parents[2] / "build" / "screenshots")
)


@pytest.fixture(scope="session")
def stack(azurite):
    env = {settings.TRAINER_QUICK_CPU_SECONDS: "20"}
    with running_host(azurite) as url, running_trainer(azurite, env=env) as worker:
        yield SimpleNamespace(
            url=url,
            conn=azurite,
            worker=worker,
            training_key=LOCAL_TRAINING_KEY,
            prediction_key=LOCAL_PREDICTION_KEY,
        )


@pytest.fixture(scope="session")
def sdk(stack):
    return CustomVisionTrainingClient(
        stack.url, ApiKeyCredentials(in_headers={"Training-key": stack.training_key})
    )


def upload(sdk, project_id, first, n, tag_ids=None, size=(96, 72)):
    """n real photos (indices first..) through the SDK, in batches of 64."""
    for start in range(first, first + n, 64):
        entries = [
            ImageFileCreateEntry(name=f"p{i}.jpg", contents=imgs.photo_jpeg(i, size), tag_ids=tag_ids)
            for i in range(start, min(first + n, start + 64))
        ]
        assert sdk.create_images_from_files(
            project_id, ImageFileCreateBatch(images=entries)
        ).is_batch_successful


@pytest.fixture(scope="session")
def classifier(sdk):
    """(project, {tag name: id}, iteration): a Multiclass General (compact) classifier trained on 2 x 6 real
    photos, with 3 untagged photos added after training."""
    project = sdk.create_project(
        f"smart-{layout.new_id()[:8]}", classification_type="Multiclass", domain_id=COMPACT
    )
    tags = {name: sdk.create_tag(project.id, name).id for name in ("left", "right")}
    upload(sdk, project.id, 0, 6, [tags["left"]], (160, 120))
    upload(sdk, project.id, 500, 6, [tags["right"]], (160, 120))
    it = wait_trained(sdk, project.id, sdk.train_project(project.id).id)
    assert it.status == "Completed", it.training_error_details
    upload(sdk, project.id, 1_000, 3, None, (160, 120))
    yield project, tags, it
    sdk.delete_project(project.id)


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: apt-get install chromium chromium-driver (make test does)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


def open_portal(browser, stack, *, signed_in: bool = True, hash_: str = ""):
    """A new tab at /portal/ (signed in through sessionStorage, as the login form leaves it), with the page's
    uncaught errors collected in page.errors."""
    context = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    if signed_in:
        context.add_init_script(
            f"sessionStorage.setItem('cv.trainingKey', {stack.training_key!r});"
            f"sessionStorage.setItem('cv.predictionKey', {stack.prediction_key!r});"
        )
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.set_default_timeout(15_000)
    page.goto(f"{stack.url}/portal/{hash_}")
    return page


@pytest.fixture
def page(browser, stack):
    p = open_portal(browser, stack)
    yield p
    errors = list(p.errors)
    p.context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def shot():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str):
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"


def accessibility_problems(
    page,
    rules=(
        "label",
        "button-name",
        "link-name",
        "select-name",
        "image-alt",
        "aria-allowed-attr",
        "aria-required-attr",
        "duplicate-id-aria",
        "document-title",
        "html-has-lang",
        "list",
        "nested-interactive",
    ),
):
    """axe-core (npm, pinned) over the page as it is now: the violations of the named rules, as readable
    lines. It is evaluated through the DevTools protocol, so the page's CSP stays on."""
    if not page.evaluate("() => !!window.axe"):
        page.evaluate(AXE.read_text() + "\n;0")
    found = page.evaluate(
        """async (rules) => {
        const r = await axe.run(document, {runOnly: {type: 'rule', values: rules}});
        return r.violations.map((v) => v.id + ': ' + v.nodes.map((n) => n.target.join(' ')).join(', '));
    }""",
        list(rules),
    )
    return found
