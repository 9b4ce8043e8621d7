"""The portal's static route: only the packaged files, with the right types, caching and security headers."""

import re

import azure.functions as func
import pytest

from functions import http_portal
from functions.portal import assets


def call(path: str, url: str | None = None, headers: dict | None = None) -> func.HttpResponse:
    req = func.HttpRequest(
        "GET",
        url or f"http://localhost/portal/{path}",
        headers=headers or {},
        body=b"",
        route_params={"path": path} if path else {},
    )
    return http_portal.portal.build().get_user_function()(req)


def test_index_and_files_are_served_with_their_types():
    index = call("")
    assert index.status_code == 200 and index.mimetype == "text/html"
    assert b'<script type="module" src="/portal/js/app.js">' in index.get_body()
    js = call("js/app.js")
    assert js.status_code == 200 and js.headers["Content-Type"].startswith("text/javascript")
    assert call("css/portal.css").headers["Content-Type"].startswith("text/css")


def test_bare_portal_redirects_to_the_slash_form():
    res = call("", url="http://localhost/portal")
    assert res.status_code == 308 and res.headers["Location"] == "/portal/"


def test_client_routes_get_the_app_and_unknown_files_404():
    assert call("p/123/images").get_body() == call("").get_body()
    assert call("js/nope.js").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "../function_app.py",
        "..%2Ffunction_app.py",
        "/etc/passwd",
        "js/../../host.json",
        "portal/assets.py",
        "assets.py",
        "static/index.html",
        "js/app.js%00.png",
    ],
)
def test_nothing_outside_the_packaged_files_is_reachable(path):
    res = call(path)
    # Either the app shell (a client-side route) or 404; never the bytes of a file outside static/.
    assert res.status_code in (200, 404)
    if res.status_code == 200:
        assert res.get_body() == call("").get_body()


def test_etag_revalidation_and_security_headers():
    first = call("js/api.js")
    etag = first.headers["ETag"]
    again = call("js/api.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.get_body()
    assert (
        first.headers["Cache-Control"] == "no-cache" and first.headers["X-Content-Type-Options"] == "nosniff"
    )
    csp = first.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp


def test_no_file_loads_anything_from_another_origin():
    # Offline by design: no CDN, no remote fonts or scripts; every import is a relative module of our own.
    for name in assets.names():
        text = assets.lookup(name).data.decode("utf-8", "replace") if not name.endswith(".png") else ""
        assert not re.search(r"""(src|href)=["']https?://""", text), name
        assert not re.search(r"""@import\s+url\(["']?https?://""", text), name
        for spec in re.findall(r"""\bimport\s*(?:[^'"]*from\s*)?\(?\s*["']([^"']+)["']""", text):
            assert spec.startswith("./"), (name, spec)
            assert assets.lookup("js/" + spec[2:]) is not None, (name, spec)


def test_no_inline_styles_or_scripts_that_the_csp_would_block():
    html = call("").get_body().decode()
    assert "style=" not in html and not re.search(r"<script(?![^>]*\bsrc=)", html)
    for name in assets.names():
        if name.endswith(".js"):
            text = assets.lookup(name).data.decode()
            assert ".innerHTML" not in text, (
                f"{name}: build DOM with ui.h, never innerHTML (data is untrusted)"
            )
