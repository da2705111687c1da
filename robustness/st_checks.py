"""chatgate's own schemathesis checks: no unexplained 5xx, every error in the OpenAI shape.

Loaded by the schemathesis CLI through ``SCHEMATHESIS_HOOKS=robustness.st_checks`` (what
:mod:`robustness.fuzz` sets) and selected with ``--checks chatgate_server_error,…``. The rules
themselves are in :mod:`robustness.shape`.

- ``chatgate_server_error``: no 5xx, except 502/503/504 the upstream explains. The fake upstream
  behind a fuzz run is configured to succeed, so the only way a generated request can make it fail
  is a ``"fake"`` knob in its body (chatgate passes unknown fields through): only then may the
  answer be an upstream error.
- ``chatgate_error_shape``: every 4xx/5xx is ``{"error": {"message", "type", "param", "code"}}``
  (message and type strings, param and code string or null) — but the seed endpoints answer in
  the seed's own ``{"detail": "…"}``; a 200
  event stream either ends with ``data: [DONE]`` or with one ``data: {"error": …}`` event in
  that shape and nothing after it. The Anthropic door (``/v1/messages``) answers in Anthropic's
  shape instead, and its streams end with ``message_stop`` or one ``error`` event; the Ollama
  doors (``/api/chat``, ``/api/generate``, ``/api/show``…) answer ``{"error": "…"}``, and their
  NDJSON streams end with a ``done: true`` line or one ``{"error": …}`` line.
"""

from __future__ import annotations

from typing import Any

import schemathesis

from robustness.shape import (
    ANTHROPIC_PATHS,
    OLLAMA_PATHS,
    SEED_PATHS,
    anthropic_body_problem,
    anthropic_sse_problem,
    body_problem,
    ndjson_problem,
    ollama_body_problem,
    seed_body_problem,
    server_error_problem,
    sse_problem,
)


def _content_type(response: schemathesis.Response) -> str:
    values = response.headers.get("content-type") or [""]
    return values[0].lower()


@schemathesis.check
def chatgate_server_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    problem = server_error_problem(response.status_code, response.content, case.body)
    if problem:
        raise AssertionError(problem)
    return None


@schemathesis.check
def chatgate_error_shape(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    status = response.status_code
    # Refusals made before a door runs (a wrong method; a bad Host, Origin, content type or size
    # by api/guard.py and api/bodylimit.py) come in that door's shape too: no exception here.
    if case.operation.path in ANTHROPIC_PATHS:
        if status >= 400:
            problem = anthropic_body_problem(response.content)
            if problem:
                raise AssertionError(f"{status} not in Anthropic's error shape: {problem}")
        elif _content_type(response).startswith("text/event-stream"):
            text = response.content.decode("utf-8", "replace")
            problem = anthropic_sse_problem(text, complete=not response.stream_cut_short)
            if problem:
                raise AssertionError(f"event stream: {problem}")
        return None
    if case.operation.path in OLLAMA_PATHS:
        if status >= 400:
            problem = ollama_body_problem(response.content)
            if problem:
                raise AssertionError(f"{status} not in Ollama's error shape: {problem}")
        elif _content_type(response).startswith("application/x-ndjson"):
            text = response.content.decode("utf-8", "replace")
            problem = ndjson_problem(text, complete=not response.stream_cut_short)
            if problem:
                raise AssertionError(f"NDJSON stream: {problem}")
        return None
    if status >= 400:
        if case.operation.path in SEED_PATHS:
            problem = seed_body_problem(response.content)
            if problem:
                raise AssertionError(f"{status} not in the seed's error shape: {problem}")
            return None
        problem = body_problem(response.content)
        if problem:
            raise AssertionError(f"{status} not in the OpenAI error shape: {problem}")
    elif status == 200 and _content_type(response).startswith("text/event-stream"):
        text = response.content.decode("utf-8", "replace")
        problem = sse_problem(text, complete=not response.stream_cut_short)
        if problem:
            raise AssertionError(f"event stream: {problem}")
    return None
