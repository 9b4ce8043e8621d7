"""The portal's shell in Chromium: sign-in, the project list, creating, configuring and deleting a project."""

import pytest

from cvcore import layout
from tests.portal.conftest import open_portal

pytestmark = pytest.mark.portal
GENERAL_DETECTION = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"


def test_wrong_key_shows_a_clear_message_and_nothing_else(browser, stack, shot):
    page = open_portal(browser, stack, signed_in=False)
    try:
        page.get_by_label("Training key").fill("not-the-key")
        page.get_by_role("button", name="Sign in").click()
        alert = page.locator(".login [role=alert]")
        alert.filter(has_text="not accepted").wait_for()
        assert alert.inner_text() == "That training key was not accepted. Check it and try again."
        assert page.locator(".card").count() == 0 and page.get_by_text("Projects", exact=True).count() == 0
        assert page.evaluate("sessionStorage.getItem('cv.trainingKey')") is None
        shot(page, "sign-in-wrong-key")
        page.get_by_label("Training key").fill(stack.training_key)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Projects").wait_for()
        assert page.evaluate("sessionStorage.getItem('cv.trainingKey')") == stack.training_key
        assert page.evaluate("localStorage.length") == 0  # the key is never kept beyond the tab's session
        assert not page.errors
    finally:
        page.context.close()


def test_a_key_revoked_mid_session_returns_to_sign_in(page):
    page.get_by_role("heading", name="Projects").wait_for()
    page.evaluate("sessionStorage.setItem('cv.trainingKey', 'revoked')")
    page.evaluate("location.hash = '#/p/00000000-0000-0000-0000-000000000000/images'")
    page.get_by_text("no longer accepted").wait_for()
    assert page.get_by_label("Training key").is_visible()
    # Navigating once the key was refused (a late request's 401 can land first) still says why.
    page.evaluate("location.hash = '#/'")
    page.wait_for_function("document.querySelector('.login') && location.hash === '#/'")
    assert (
        page.locator(".login [role=alert]").inner_text()
        == "Your training key is no longer accepted. Sign in again."
    )


def test_create_configure_and_delete_a_project(page, sdk, shot):
    name = f"portal-{layout.new_id()[:8]}"
    page.get_by_role("button", name="New project").click()
    dlg = page.locator("dialog[open]")
    dlg.get_by_label("Name").fill(name)
    dlg.get_by_label("Description").fill("made in the browser")
    dlg.get_by_label("Object Detection (boxes around objects)").check()
    domain = dlg.get_by_label("Domain")
    options = domain.locator("option").all_inner_texts()
    assert any(o.startswith("General") for o in options) and len(options) >= 2
    domain.select_option(GENERAL_DETECTION)
    shot(page, "new-project")
    dlg.get_by_role("button", name="Create project").click()
    page.get_by_role("heading", name=name).wait_for()
    created = next(p for p in sdk.get_projects() if p.name == name)
    assert created.description == "made in the browser" and created.settings.domain_id == GENERAL_DETECTION
    assert page.locator(".project-head .badge").inner_text() == "Object Detection"

    # A second project with the same name is refused in the dialog, which stays open with the API's reason.
    page.goto(page.url.split("#")[0] + "#/")
    page.get_by_role("button", name="New project").click()
    page.locator("dialog[open]").get_by_label("Name").fill(name)
    page.locator("dialog[open]").get_by_role("button", name="Create project").click()
    page.locator("dialog[open] .error").filter(has_text="BadRequestProjectNameNotUnique").wait_for()
    page.locator("dialog[open]").get_by_role("button", name="Cancel").click()
    page.locator(f".card[data-project='{created.id}']").wait_for()
    shot(page, "projects")

    page.goto(page.url.split("#")[0] + f"#/p/{created.id}/settings")
    page.get_by_label("Name").fill(name + "-renamed")
    page.get_by_label("Description").fill("renamed")
    page.get_by_role("button", name="Save changes").click()
    page.get_by_role("heading", name=name + "-renamed").wait_for()
    assert sdk.get_project(created.id).name == name + "-renamed"
    shot(page, "settings")

    page.get_by_role("button", name="Delete project").click()
    page.locator("dialog[open]").get_by_role("button", name="Cancel").click()
    assert sdk.get_project(created.id).name == name + "-renamed"  # cancelled: still there
    page.get_by_role("button", name="Delete project").click()
    page.locator("dialog[open]").get_by_role("button", name="Delete project").click()
    page.get_by_role("heading", name="Projects").wait_for()
    assert created.id not in {p.id for p in sdk.get_projects()}
    assert page.locator(f".card[data-project='{created.id}']").count() == 0


def test_unknown_project_says_not_found(page, stack):
    page.goto(f"{stack.url}/portal/#/p/{layout.new_id()}/images")
    page.get_by_role("heading", name="Not found").wait_for()
    assert "Traceback" not in page.content()


def test_every_control_is_reachable_by_keyboard_and_labelled(page, shot):
    page.get_by_role("button", name="New project").wait_for()
    page.get_by_role("button", name="New project").click()
    dlg = page.locator("dialog[open]")
    # Every input in the dialog has an accessible name.
    for el in dlg.locator("input, select, textarea").all():
        assert page.evaluate(
            "(e) => !!(e.labels && e.labels.length) || !!e.getAttribute('aria-label')", el.element_handle()
        )
    # Tab walks through every control of the dialog, and each focused control draws a visible outline.
    seen = set()
    for _ in range(12):
        page.keyboard.press("Tab")
        info = page.evaluate("""() => { const e = document.activeElement; const s = getComputedStyle(e);
            return [e.tagName + ':' + (e.getAttribute('value') || e.textContent.trim().slice(0, 20)),
                    s.outlineStyle, s.outlineWidth]; }""")
        if info[0].startswith(
            "BODY:"
        ):  # past the last control the modal hands focus to the browser, then back
            continue
        seen.add(info[0])
        assert info[1] != "none" and info[2] != "0px", info
    assert {"INPUT:", "TEXTAREA:", "SELECT:"} <= {s.split(":")[0] + ":" for s in seen}
    page.keyboard.press("Escape")
    assert page.locator("dialog[open]").count() == 0


def test_axe_finds_no_unlabelled_controls_on_the_list_and_dialog(page):
    from tests.portal.conftest import accessibility_problems

    page.get_by_role("button", name="New project").wait_for()
    assert accessibility_problems(page) == []
    page.get_by_role("button", name="New project").click()
    page.locator("dialog[open]").wait_for()
    assert accessibility_problems(page) == []
