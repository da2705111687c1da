"""The robustness checkers themselves: they accept chatgate's shapes and catch what is wrong."""

from __future__ import annotations

import orjson
from robustness.shape import body_problem, server_error_problem, sse_problem

ERROR = {"error": {"message": "boom", "type": "upstream_error", "param": None, "code": "x"}}
CHUNK = 'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'


def test_error_body_shape() -> None:
    assert body_problem(orjson.dumps(ERROR)) is None
    assert body_problem(b"Internal Server Error")
    assert body_problem(b'{"detail": "Not Found"}')
    assert body_problem(orjson.dumps({"error": {"message": "m", "type": "t", "param": None}}))
    assert body_problem(orjson.dumps({"error": {**ERROR["error"], "code": 5}}))
    assert body_problem(orjson.dumps({**ERROR, "extra": 1}))


def test_stream_endings() -> None:
    error_event = "data: " + orjson.dumps(ERROR).decode() + "\n\n"
    assert sse_problem(CHUNK + "data: [DONE]\n\n") is None
    assert sse_problem(CHUNK + error_event) is None
    assert sse_problem(CHUNK) == "stream ended without [DONE] or an error event (silent truncation)"
    assert sse_problem(CHUNK, complete=False) is None
    assert sse_problem(CHUNK + error_event + "data: [DONE]\n\n")
    assert sse_problem(CHUNK + 'data: {"error": "bare string"}\n\n')


def test_only_upstream_explained_5xx_pass() -> None:
    bad_gateway = orjson.dumps(ERROR)
    assert server_error_problem(200, b"{}", {}) is None
    assert server_error_problem(500, b"Internal Server Error", {"model": "m"})
    assert server_error_problem(502, bad_gateway, {"model": "m"})  # the fake was told to succeed
    assert server_error_problem(502, bad_gateway, {"model": "m", "fake": {"status": 500}}) is None
    assert server_error_problem(502, b'{"error": "x"}', {"fake": {}})
