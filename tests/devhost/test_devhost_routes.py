"""Route templates as the Functions host matches them: pure unit tests, no storage."""

import pytest

from devhost.routes import Route, Router

ANY = None


def router(*templates, prefix=""):
    """Routes whose target is their own template; a template may carry methods as 'GET,POST template'."""
    routes = []
    for t in templates:
        methods, _, template = t.rpartition(" ")
        routes.append(Route(template, frozenset(methods.split(",")) if methods else ANY, template))
    return Router(routes, prefix)


def hit(r, path, method="GET"):
    route, values = r.resolve(method, path)
    return (route.target, values) if route else (None, values)


def test_literal_beats_constrained_beats_parameter_beats_catch_all():
    r = router("items/{*rest}", "items/{name}", "items/{id:int}", "items/special")
    assert hit(r, "/items/special") == ("items/special", {})
    assert hit(r, "/items/42") == ("items/{id:int}", {"id": "42"})
    assert hit(r, "/items/bolt") == ("items/{name}", {"name": "bolt"})
    assert hit(r, "/items/a/b/c") == ("items/{*rest}", {"rest": "a/b/c"})


def test_precedence_is_decided_left_to_right():
    r = router("{a}/b", "a/{b}")
    assert hit(r, "/a/b")[0] == "a/{b}"
    r = router("{*all}", "x/{*rest}")
    assert hit(r, "/x/1/2") == ("x/{*rest}", {"rest": "1/2"})
    assert hit(r, "/y/1") == ("{*all}", {"all": "y/1"})


def test_literals_match_without_case_and_values_keep_theirs():
    r = router("CustomVision/{version}/training/{*path}")
    assert hit(r, "/customvision/V3.3/TRAINING/Projects/AbC") == (
        "CustomVision/{version}/training/{*path}",
        {"version": "V3.3", "path": "Projects/AbC"},
    )


def test_catch_all_may_be_empty_and_is_then_absent():
    r = router("files/{*path}")
    assert hit(r, "/files") == ("files/{*path}", {})
    assert hit(r, "/files/") == ("files/{*path}", {})
    assert hit(r, "/files/a%2Fb/c.txt") == ("files/{*path}", {"path": "a%2Fb/c.txt"})


def test_optional_and_default_parameters():
    r = router("opt/{a?}", "def/{n=7}")
    assert hit(r, "/opt") == ("opt/{a?}", {})
    assert hit(r, "/opt/x") == ("opt/{a?}", {"a": "x"})
    assert hit(r, "/opt/x/y") == (None, None)
    assert hit(r, "/def") == ("def/{n=7}", {"n": "7"})
    assert hit(r, "/def/3") == ("def/{n=7}", {"n": "3"})


@pytest.mark.parametrize(
    "template,good,bad",
    [
        ("{v:int}", ["0", "-12", "2147483647"], ["x", "1.5", "2147483648", ""]),
        ("{v:long}", ["9223372036854775807"], ["9223372036854775808"]),
        (
            "{v:guid}",
            ["0f8fad5b-d9cb-469f-a165-70867728950e", "0F8FAD5BD9CB469FA16570867728950E"],
            ["0f8fad5b-d9cb-469f-a165", "not-a-guid"],
        ),
        ("{v:alpha}", ["abcXYZ"], ["abc1", "a-b"]),
        ("{v:bool}", ["true", "False"], ["yes"]),
        ("{v:int:min(10)}", ["10", "99"], ["9", "x"]),
        ("{v:int:range(1,3)}", ["1", "3"], ["0", "4"]),
        ("{v:length(2,3)}", ["ab", "abc"], ["a", "abcd"]),
        ("{v:regex(^\\d{{3}}$)}", ["123"], ["12", "1234", "abc"]),
        ("{v:regex(^(a|b)+$)}", ["abba", "ABBA"], ["abc"]),
    ],
)
def test_constraints(template, good, bad):
    r = router("c/" + template)
    for value in good:
        assert hit(r, f"/c/{value}") == ("c/" + template, {"v": value}), value
    for value in bad:
        assert hit(r, f"/c/{value}")[0] is None, value


def test_unknown_constraint_and_bad_templates_are_refused():
    with pytest.raises(ValueError):
        Route("x/{id:nosuch}", ANY)
    with pytest.raises(ValueError):
        Route("x/{id", ANY)


def test_complex_segment_splits_from_the_right():
    r = router("files/{name}.{ext}")
    assert hit(r, "/files/archive.tar.gz") == ("files/{name}.{ext}", {"name": "archive.tar", "ext": "gz"})
    assert hit(r, "/files/noext")[0] is None


def test_methods_give_405_with_allow_and_fall_back_to_a_less_specific_route():
    r = router("GET items/{id:int}", "DELETE items/{id:int}", "POST items/{name}")
    assert hit(r, "/items/3", "PUT") == (None, ["DELETE", "GET", "POST"])  # every route the path matches
    assert hit(r, "/items/x", "GET") == (None, ["POST"])
    assert hit(r, "/items/3", "delete")[0] == "items/{id:int}"
    # POST to a number: the int route refuses the method, the parameter route takes it
    assert hit(r, "/items/3", "POST") == ("items/{name}", {"name": "3"})
    assert hit(r, "/nothing/here", "GET") == (None, None)


def test_route_prefix_is_required_and_matched_without_case():
    r = router("items/{id}", prefix="api")
    assert hit(r, "/api/items/1") == ("items/{id}", {"id": "1"})
    assert hit(r, "/API/items/1")[0] == "items/{id}"
    assert hit(r, "/items/1") == (None, None)
    assert hit(r, "/apix/items/1") == (None, None)


def test_empty_prefix_and_trailing_slash():
    r = router("items/{id}", "")
    assert hit(r, "/items/1/") == ("items/{id}", {"id": "1"})
    assert hit(r, "/") == ("", {})
