import pytest

from cvcore.errors import NotFound
from functions.web.router import MethodNotAllowed, Router


def make():
    r = Router()
    r.route("GET", "projects/{projectId}/images/{imageId}")(lambda **kw: ("by-id", kw))
    r.route("GET", "projects/{projectId}/images/tagged")(lambda **kw: ("tagged", kw))
    r.route("GET", "projects/{projectId}/images/tagged/count")(lambda **kw: ("tagged-count", kw))
    r.route("POST", "projects/{projectId}/images")(lambda **kw: ("create", kw))
    return r


def test_literal_segment_beats_parameter():
    fn, params = make().resolve("GET", "projects/p1/images/tagged")
    assert fn()[0] == "tagged" and params == {"projectId": "p1"}
    fn, params = make().resolve("GET", "projects/p1/images/abc")
    assert fn()[0] == "by-id" and params == {"projectId": "p1", "imageId": "abc"}


def test_literals_match_without_case_and_slashes_are_ignored():
    fn, _ = make().resolve("get", "/Projects/p1/Images/Tagged/COUNT/")
    assert fn()[0] == "tagged-count"


def test_wrong_method_is_405_and_unknown_path_404():
    with pytest.raises(MethodNotAllowed):
        make().resolve("DELETE", "projects/p1/images")
    with pytest.raises(NotFound):
        make().resolve("GET", "projects/p1/nothing/here")
