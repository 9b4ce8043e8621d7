import pytest

from cvcore.errors import BadRequest
from functions.web import multipart

BINARY = bytes(range(256)) * 4  # every byte value, including \r\n and invalid UTF-8


def test_parts_with_and_without_filename_keep_their_bytes():
    body = (
        b'--b0\r\nContent-Disposition: form-data; name="imageData"\r\n\r\n' + BINARY + b"\r\n"
        b'--b0\r\nContent-Disposition: form-data; name="x"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        + BINARY[::-1]
        + b"\r\n--b0--\r\n"
    )
    assert multipart.parse("multipart/form-data; boundary=b0", body) == [
        ("imageData", BINARY),
        ("a.jpg", BINARY[::-1]),
    ]


@pytest.mark.parametrize(
    "ctype, body, problem",
    [
        ("multipart/form-data", b"--x--", "boundary"),
        (
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nabc',
            "incomplete",
        ),
        ("multipart/form-data; boundary=x", b"--x\r\nno separator here\r\n--x--", "separator"),
    ],
)
def test_malformed_multipart_is_refused_with_a_reason(ctype, body, problem):
    with pytest.raises(BadRequest, match=problem):
        multipart.parse(ctype, body)
