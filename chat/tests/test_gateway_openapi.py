"""static/api/openapi.json against the /v1 API it describes.

Three layers: the file is valid OpenAPI and describes exactly the routes of
chat/api_urls.py; representative real calls (every status that can be caused in-process)
answer with bodies that match the response schema documented for them; and schemathesis
fuzzes every operation in-process (Django's WSGI handler, no server) against the mock
model, with positive and negative data, asserting no 5xx and conformance to the document.
What the fuzzer found in the gateway (NUL characters on PostgreSQL, newlines in paths) is
fixed and kept as regression tests.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections, connection
from django.test import Client
from django.urls import URLPattern, get_resolver, reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.api_tokens import create_api_token
from chat import api_urls, api_views, gateway
from config.services import get_system_setting
from models_registry.client import UpstreamClient
from models_registry.models import ModelConfig

SPEC_PATH = Path(__file__).resolve().parents[2] / "static" / "api" / "openapi.json"
SPEC: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
UNREACHABLE_URL = "http://127.0.0.1:9/v1"  # the discard port: nothing listens


# -- the document -------------------------------------------------------------------------


def served_operations() -> set[tuple[str, str]]:
    """(OpenAPI path, method) for every route of chat/api_urls.py but the catch-all."""
    operations = set()
    for pattern in api_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        view = pattern.callback.view_class
        if view is api_views.ApiNotFoundView:
            continue
        path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern.pattern))
        methods = [m for m in view.http_method_names if hasattr(view, m)]
        assert methods, f"{view.__name__} serves no method"
        operations.update((path, method) for method in methods)
    return operations


def documented_operations() -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in SPEC["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def test_the_document_is_valid_openapi():
    schema = schemathesis.openapi.from_path(SPEC_PATH, config=schemathesis.Config())
    schema.validate()  # the OpenAPI 3.1 meta-schema; raises on any violation
    assert SPEC["openapi"].startswith("3.1.")
    assert SPEC["servers"] == [{"url": "/v1"}]
    assert SPEC["security"] == [{"bearerAuth": []}]
    scheme = SPEC["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    # Every schema is a valid JSON Schema 2020-12 (OpenAPI 3.1's dialect)...
    for name, schema_object in SPEC["components"]["schemas"].items():
        wrapped = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema_object}
        assert jsonschema_rs.meta.is_valid(wrapped), name
    # ...and every example matches the schema it illustrates.
    for path, method, status, media_type, content in iter_media_types():
        examples = [content["example"]] if "example" in content else []
        examples += [e["value"] for e in content.get("examples", {}).values()]
        for example in examples:
            errors = [e.message for e in validator_for(content["schema"]).iter_errors(example)]
            assert not errors, (path, method, status, media_type, errors)


def test_the_response_schemas_refuse_what_the_gateway_never_sends():
    """The contract checks below can fail: the schemas are closed and their refs resolve."""
    completion = resolve(SPEC["paths"]["/chat/completions"]["post"]["responses"]["200"])
    schema = completion["content"]["application/json"]["schema"]
    valid = completion["content"]["application/json"]["example"]
    assert validator_for(schema).is_valid(valid)
    assert not validator_for(schema).is_valid({**valid, "system_fingerprint": "x"})
    assert not validator_for(schema).is_valid({**valid, "usage": {"prompt_tokens": 1}})
    error = documented_schema("/chat/completions", "post", 400, "application/json")
    assert not validator_for(error).is_valid({"error": {"message": "m", "type": "t"}})
    event = completion["content"]["text/event-stream"]["schema"]
    assert validator_for(resolve(event)).is_valid({"data": "[DONE]"})


def test_the_document_describes_exactly_the_routes_the_app_serves():
    assert documented_operations() == served_operations()
    # servers: [{"url": "/v1"}] is where chat/api_urls.py is mounted.
    assert reverse("api:models") == "/v1/models"
    assert reverse("api:chat_completions") == "/v1/chat/completions"
    assert reverse("api:model", args=["personal/x"]) == "/v1/models/personal/x"
    mounted = [p for p in get_resolver().url_patterns if str(p.pattern) == "v1/"]
    assert len(mounted) == 1


def test_the_request_schema_states_the_gateways_own_rules():
    request = SPEC["components"]["schemas"]["ChatCompletionRequest"]
    fields = request["properties"]
    for name, (low, high) in gateway.NUMBER_RANGES.items():
        assert (fields[name]["minimum"], fields[name]["maximum"]) == (low, high), name
    message = SPEC["components"]["schemas"]["ChatMessage"]["properties"]
    assert set(message["role"]["enum"]) == gateway.ROLES
    stop_list = next(s for s in fields["stop"]["anyOf"] if s.get("type") == "array")
    assert stop_list["maxItems"] == gateway.MAX_STOP_SEQUENCES
    for name in gateway.UNSUPPORTED:
        assert fields[name]["enum"] == [None, False, 0, "", [], {}], name
    assert set(request["required"]) == {"model", "messages"}


# -- looking up and checking documented responses -----------------------------------------


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """``node``, or what its "#/..." ``$ref`` points at in the document."""
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        node = SPEC
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def iter_media_types() -> Iterator[tuple[str, str, str, str, dict[str, Any]]]:
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            body = operation.get("requestBody", {}).get("content", {})
            for media_type, content in body.items():
                yield path, method, "request", media_type, content
            for status, response in operation["responses"].items():
                for media_type, content in resolve(response).get("content", {}).items():
                    yield path, method, status, media_type, content
    for name, response in SPEC["components"]["responses"].items():
        for media_type, content in response.get("content", {}).items():
            yield "components", "responses", name, media_type, content


def validator_for(schema: dict[str, Any]) -> jsonschema_rs.Validator:
    """A 2020-12 validator whose "#/components/..." references resolve in the document."""
    root = {"allOf": [schema], "components": SPEC["components"]}
    return jsonschema_rs.Draft202012Validator(root, validate_formats=True)


# Not an operation: the 405 any undocumented method gets, documented once for all paths.
OTHER_METHODS = "(another method)"


def documented_schema(path: str, method: str, status: int, media_type: str) -> dict[str, Any]:
    """The schema openapi.json gives for this answer (a 4xx/5xx must be listed for it)."""
    if path == OTHER_METHODS:
        assert status == 405
        response = SPEC["components"]["responses"]["MethodNotAllowed"]
    else:
        responses = SPEC["paths"][path][method]["responses"]
        assert str(status) in responses, f"{method.upper()} {path} does not document {status}"
        response = resolve(responses[str(status)])
    assert media_type in response["content"], (path, method, status, media_type)
    return resolve(response["content"][media_type]["schema"])


def assert_documented(response, path: str, method: str = "post") -> Any:
    """The response's body matches what openapi.json documents for it; returns the body."""
    assert response["Cache-Control"] == "no-store"  # as info.description promises
    media_type = response["Content-Type"].split(";")[0].strip()
    schema = documented_schema(path, method, response.status_code, media_type)
    if media_type == "text/event-stream":
        events = sse_events(response)
        data_schema = schema["properties"]["data"]["anyOf"][1]["contentSchema"]
        for event in events:
            assert_valid(schema, {"data": event})
            if event != "[DONE]":
                assert_valid(data_schema, json.loads(event))
        return events
    body = response.json()
    assert_valid(schema, body)
    return body


def assert_valid(schema: dict[str, Any], instance: Any) -> None:
    errors = [
        f"{e.message} at {list(e.instance_path)}"
        for e in validator_for(schema).iter_errors(instance)
    ]
    assert not errors, f"{json.dumps(instance)[:500]}: {errors}"


def sse_events(response) -> list[str]:
    text = b"".join(response.streaming_content).decode()
    assert text.endswith("\n\n")
    return [block.removeprefix("data: ") for block in text.split("\n\n") if block]


# -- contract: real calls, documented answers ---------------------------------------------


@pytest.fixture
def team_model(mock_llm) -> ModelConfig:
    model = ModelConfig(
        name="Team Mock", api_url=mock_llm.base_url, model="mock-model", context_window=4096
    )
    model.set_api_key("sk-upstream-never-shown")
    model.save()
    return model


def system_model(name: str, api_url: str, upstream_id: str) -> ModelConfig:
    return ModelConfig.objects.create(
        name=name, api_url=api_url, model=upstream_id, context_window=4096, max_output_tokens=256
    )


@pytest.fixture
def bob_api(bob) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {create_api_token(user=bob, name='contract')[1]}")


def post(client: Client, path: str, body: object) -> Any:
    payload = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(f"/v1{path}", payload, content_type="application/json")


def ask(model: str = "team-mock", text: str = "Hello there", **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **fields}


@pytest.mark.django_db
def test_model_list_and_retrieval_match_the_document(bob, bob_api, team_model, mock_llm):
    ModelConfig.objects.create(
        owner=bob, name="My Ollama", api_url="http://127.0.0.1:11434/v1", model="llama3"
    )
    listed = bob_api.get("/v1/models")
    assert listed.status_code == 200
    body = assert_documented(listed, "/models", "get")
    assert [m["id"] for m in body["data"]] == ["team-mock", "personal/my-ollama"]
    # A personal id's "/" may be sent as is or percent-encoded.
    for url in ("/v1/models/personal/my-ollama", "/v1/models/personal%2Fmy-ollama"):
        detail = bob_api.get(url)
        assert detail.status_code == 200, url
        assert assert_documented(detail, "/models/{model_id}", "get")["owned_by"] == "you"
    assert (
        assert_documented(bob_api.get("/v1/models/TEAM-MOCK"), "/models/{model_id}", "get")["id"]
        == "team-mock"
    )


REQUEST_SCHEMA = SPEC["components"]["schemas"]["ChatCompletionRequest"]
EVERY_FIELD = ask(
    messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
        {"role": "assistant", "content": "Hi.", "name": "parley", "tool_calls": []},
        {"role": "user", "content": "Hello there"},
    ],
    temperature=0.5,
    top_p=1,
    presence_penalty=-2,
    frequency_penalty=2.0,
    max_tokens=20,
    max_completion_tokens=10_000,
    stop=["\n\n", "END"],
    seed=42,
    n=1,
    stream=False,
    parley={"trim_to_context_window": True},
    tools=None,
    user="not forwarded",
)


@pytest.mark.django_db
def test_completions_match_the_document(bob_api, team_model, mock_llm):
    assert_valid(REQUEST_SCHEMA, EVERY_FIELD)
    response = post(bob_api, "/chat/completions", EVERY_FIELD)
    assert response.status_code == 200
    body = assert_documented(response, "/chat/completions")
    assert "reasoning_content" not in body["choices"][0]["message"]
    sent = mock_llm.requests[-1].body
    assert sent["max_tokens"] == 20  # the smaller of the two limits
    assert "user" not in sent and "parley" not in sent

    system_model("Thinker", mock_llm.base_url, "mock-reasoning")
    thinking = post(bob_api, "/chat/completions", ask("thinker"))
    body = assert_documented(thinking, "/chat/completions")
    assert body["choices"][0]["message"]["reasoning_content"]


@pytest.mark.django_db
@pytest.mark.parametrize("include_usage", [False, True])
def test_streamed_completions_match_the_document(bob_api, team_model, mock_llm, include_usage):
    system_model("Thinker", mock_llm.base_url, "mock-reasoning")
    body = ask("thinker", stream=True, stream_options={"include_usage": include_usage})
    response = post(bob_api, "/chat/completions", body)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream; charset=utf-8"
    events = assert_documented(response, "/chat/completions")
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert any("reasoning_content" in c["choices"][0]["delta"] for c in chunks if c["choices"])
    assert ("usage" in chunks[-1]) is include_usage


@pytest.mark.django_db
def test_an_error_after_the_first_token_is_a_documented_error_event(bob_api, mock_llm):
    system_model("Crashy", mock_llm.base_url, "mock-error_mid_stream")
    response = post(bob_api, "/chat/completions", ask("crashy", stream=True))
    assert response.status_code == 200
    events = assert_documented(response, "/chat/completions")
    assert events[-1] != "[DONE]"
    assert json.loads(events[-1])["error"]["code"] == "upstream_error"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{not json", None),
        (ask(temperature=3), None),
        (ask(stop=["a", "b", "c", "d", "e"]), None),
        (ask(stop=""), None),
        (ask(max_completion_tokens=0), None),
        (ask(n=2), None),
        (ask(stream_options={"include_usage": True}), None),
        (ask(parley={"trim_to_context_window": "yes"}), None),
        (ask(messages=[{"role": "user", "content": [{"type": "image_url"}]}]), None),
        (ask(tools=[{"type": "function"}]), "unsupported_parameter"),
        (ask(messages=[{"role": "tool", "content": "x"}]), "unsupported_parameter"),
        (
            ask(messages=[{"role": "assistant", "content": "", "tool_calls": [{}]}]),
            "unsupported_parameter",
        ),
    ],
)
def test_bad_requests_match_the_document(bob_api, team_model, body, code):
    if not isinstance(body, str):  # the document refuses what the gateway refuses
        assert not validator_for(REQUEST_SCHEMA).is_valid(body)
    response = post(bob_api, "/chat/completions", body)
    assert response.status_code == 400
    assert assert_documented(response, "/chat/completions")["error"]["code"] == code


@pytest.mark.django_db
def test_token_and_lookup_errors_match_the_document(bob_api, team_model):
    for path, method in (("/models", "get"), ("/models/{model_id}", "get")):
        url = "/v1" + path.replace("{model_id}", "team-mock")
        for header in ({}, {"HTTP_AUTHORIZATION": "Bearer prly_nope"}):
            response = Client().get(url, **header)
            assert response.status_code == 401
            assert_documented(response, path, method)
    anonymous = Client().post("/v1/chat/completions", ask(), content_type="application/json")
    assert anonymous.status_code == 401
    assert_documented(anonymous, "/chat/completions")

    unknown = post(bob_api, "/chat/completions", ask("gpt-9"))
    assert unknown.status_code == 404
    assert assert_documented(unknown, "/chat/completions")["error"]["code"] == "model_not_found"
    missing = bob_api.get("/v1/models/gpt-9")
    assert missing.status_code == 404
    assert_documented(missing, "/models/{model_id}", "get")
    blank = bob_api.get("/v1/models/%20")
    assert blank.status_code == 400
    assert_documented(blank, "/models/{model_id}", "get")


@pytest.mark.django_db
def test_other_methods_and_paths_match_the_document(bob_api, team_model):
    for method, url in (
        ("get", "/v1/chat/completions"),
        ("post", "/v1/models"),
        ("delete", "/v1/models/team-mock"),
    ):
        response = getattr(bob_api, method)(url)
        assert response.status_code == 405, (method, url)
        assert assert_documented(response, OTHER_METHODS)["error"]["code"] == "method_not_allowed"
    unknown = post(bob_api, "/embeddings", {"input": "x"})
    assert unknown.status_code == 404
    # Not a documented path: its body is the same error object as a documented 404.
    assert_valid(
        documented_schema("/chat/completions", "post", 404, "application/json"), unknown.json()
    )
    assert unknown.json()["error"]["code"] == "unknown_url"


@pytest.mark.django_db
def test_a_too_large_body_matches_the_document(bob_api, team_model, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = post(bob_api, "/chat/completions", ask(text="x" * 2000))
    assert response.status_code == 413
    assert assert_documented(response, "/chat/completions")["error"]["code"] == "request_too_large"


@pytest.mark.django_db
def test_limits_match_the_document(bob_api, team_model):
    setting = get_system_setting()
    setting.messages_per_minute = 1
    setting.save()
    assert post(bob_api, "/chat/completions", ask()).status_code == 200
    limited = post(bob_api, "/chat/completions", ask())
    assert limited.status_code == 429
    assert assert_documented(limited, "/chat/completions")["error"]["code"] == "rate_limit_exceeded"
    retry_after = SPEC["components"]["responses"]["TooManyRequests"]["headers"]["Retry-After"]
    assert_valid(retry_after["schema"], int(limited["Retry-After"]))

    setting.messages_per_minute, setting.daily_token_quota = 0, 5
    setting.save()
    quota = post(bob_api, "/chat/completions", ask())
    assert quota.status_code == 429
    error = assert_documented(quota, "/chat/completions")["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("upstream_id", "status", "code"),
    [
        ("mock-http_500", 502, "upstream_error"),
        ("mock-http_401", 502, "upstream_auth_failed"),
        ("mock-http_404_model", 502, "upstream_model_not_found"),
        ("mock-json_instead_of_stream", 200, None),
        ("mock-http_429", 429, "upstream_rate_limited"),
        ("mock-context_too_long", 400, "context_length_exceeded"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_failures_match_the_document(bob_api, mock_llm, upstream_id, status, code, stream):
    system_model("Faulty", mock_llm.base_url, upstream_id)
    response = post(bob_api, "/chat/completions", ask("faulty", stream=stream))
    assert response.status_code == status
    body = assert_documented(response, "/chat/completions")
    if code:
        assert body["error"]["code"] == code


@pytest.mark.django_db
@pytest.mark.parametrize("stream", [False, True])
def test_an_unreachable_model_is_a_documented_502(bob_api, stream):
    system_model("Gone", UNREACHABLE_URL, "mock-model")
    response = post(bob_api, "/chat/completions", ask("gone", stream=stream))
    assert response.status_code == 502
    assert (
        assert_documented(response, "/chat/completions")["error"]["code"] == "upstream_unreachable"
    )


@pytest.mark.django_db
def test_an_unusable_model_is_a_documented_503(bob, bob_api, mock_llm):
    unreadable = system_model("Unreadable", mock_llm.base_url, "mock-model")
    ModelConfig.objects.filter(pk=unreadable.pk).update(api_key="not-ciphertext")
    # A personal model on a private address, while the admin does not allow those.
    ModelConfig.objects.create(
        owner=bob, name="Mine", api_url=mock_llm.base_url, model="mock-model"
    )
    for model in ("unreadable", "personal/mine"):
        response = post(bob_api, "/chat/completions", ask(model))
        assert response.status_code == 503, model
        assert (
            assert_documented(response, "/chat/completions")["error"]["code"] == "model_unavailable"
        )


@pytest.mark.django_db
def test_a_model_too_slow_to_answer_is_a_documented_504(bob_api, mock_llm, monkeypatch):
    system_model("Slow", mock_llm.base_url, "mock-slow_first_token")
    monkeypatch.setattr(
        gateway,
        "upstream_client_for",
        lambda model: UpstreamClient(model.api_url, idle_timeout=0.2),
    )
    response = post(bob_api, "/chat/completions", ask("slow", text="[mock:slow_first_token:1500]"))
    assert response.status_code == 504
    assert assert_documented(response, "/chat/completions")["error"]["code"] == "upstream_timeout"


# -- what the fuzzer found in the gateway (fixed; kept as regression tests) ---------------

ON_POSTGRES = connection.vendor == "postgresql"


@pytest.fixture
def nul_client(make_user, team_model):
    def client(**user_fields: Any) -> Client:
        user = make_user("nul", **user_fields)
        token = create_api_token(user=user, name="nul")[1]
        return Client(HTTP_AUTHORIZATION=f"Bearer {token}", raise_request_exception=False)

    return client


@pytest.mark.django_db
def test_a_nul_in_a_model_id_is_a_documented_error(nul_client):
    client = nul_client()
    response = post(client, "/chat/completions", ask("team-mock\x00"))
    assert response.status_code < 500
    assert_documented(response, "/chat/completions")
    response = client.get("/v1/models/team-mock%00")
    assert response.status_code < 500
    assert_documented(response, "/models/{model_id}", "get")


@pytest.mark.django_db
def test_a_nul_in_a_kept_conversation_is_answered(nul_client):
    response = post(nul_client(store_api_chats=True), "/chat/completions", ask(text="a\x00b"))
    assert response.status_code == 200
    assert_documented(response, "/chat/completions")


@pytest.mark.django_db
def test_a_newline_in_a_v1_path_gets_the_json_error(bob_api, team_model):
    not_found = documented_schema("/models/{model_id}", "get", 404, "application/json")
    for url in ("/v1/models/a%0Ab", "/v1/a%0Ab"):
        response = bob_api.get(url)
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json", url
        assert_valid(not_found, response.json())


# -- fuzz: schemathesis, in-process --------------------------------------------------------

FUZZ_SCHEMA = schemathesis.openapi.from_path(SPEC_PATH, config=schemathesis.Config())
# Examples per operation: GET /models has no input to vary.
FUZZ_EXAMPLES = {"GET /models": 5, "GET /models/{model_id}": 100, "POST /chat/completions": 100}
FUZZ_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture
def in_process_app() -> Iterator[WSGIHandler]:
    """Django as a WSGI app, called in this thread, inside this test's transaction.

    Like django.test.Client, the handler must not close the connection at the end of a
    request: that would end the transaction the test's data lives in.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_env(make_user, mock_llm) -> dict[str, Any]:
    """A user who keeps API conversations, with a system and a personal model on the mock."""
    user = make_user("fuzzer", store_api_chats=True)
    setting = get_system_setting()
    setting.messages_per_minute = 0  # the fuzzer sends hundreds of messages a minute
    setting.allow_private_endpoints = True  # the personal model is on 127.0.0.1 too
    setting.save()
    for owner, name in ((None, "Fuzz Mock"), (user, "Own Mock")):
        ModelConfig.objects.create(
            owner=owner,
            name=name,
            api_url=mock_llm.base_url,
            model="mock-model",
            context_window=2048,
            max_output_tokens=64,
        )
    return {
        "headers": {"Authorization": f"Bearer {create_api_token(user=user, name='fuzz')[1]}"},
        "model_ids": ["fuzz-mock", "personal/own-mock", "Fuzz-Mock"],
    }


def fuzz_cases(label: str, env: dict[str, Any]) -> st.SearchStrategy[schemathesis.Case]:
    """Positive and negative cases from the document, and the same naming real models.

    Random model ids stop most requests at the model lookup (404); with a real one, a
    valid request reaches the mock model and an invalid one the rest of the validation.
    """
    method, path = label.split(" ", 1)
    operation = FUZZ_SCHEMA[path][method]
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    strategies = [operation.as_strategy(mode) for mode in modes]
    if path == "/models/{model_id}":
        strategies.append(
            st.sampled_from(env["model_ids"]).flatmap(
                lambda model_id: operation.as_strategy(path_parameters={"model_id": model_id})
            )
        )
    if path == "/chat/completions":

        @st.composite
        def naming_a_real_model(draw: st.DrawFn, mode: GenerationMode) -> schemathesis.Case:
            case = draw(operation.as_strategy(mode))
            model = case.body.get("model") if isinstance(case.body, dict) else None
            # Only a valid "model" is replaced: a negative case stays invalid elsewhere.
            if isinstance(model, str) and re.search(r"\S", model):
                case.body["model"] = draw(st.sampled_from(env["model_ids"]))
                if mode is GenerationMode.POSITIVE and draw(st.booleans()):
                    case.body["stream"] = True
            return case

        strategies += [naming_a_real_model(mode) for mode in modes]
    return st.one_of(strategies)


@pytest.mark.django_db
@pytest.mark.parametrize("label", sorted(FUZZ_EXAMPLES))
def test_fuzz_the_api_against_the_document(label, fuzz_env, in_process_app):
    answered: Counter[tuple[int, str]] = Counter()

    @hypothesis_settings(
        max_examples=FUZZ_EXAMPLES[label],
        deadline=None,
        derandomize=True,  # the same cases on every run and machine
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(case=fuzz_cases(label, fuzz_env))
    def fuzz(case: schemathesis.Case) -> None:
        response = case.call(app=in_process_app, headers=fuzz_env["headers"])
        answered[response.status_code, response.headers.get("content-type", [""])[0]] += 1
        assert response.status_code < 500, (case.body, case.path_parameters, response.text[:300])
        case.validate_response(response, checks=FUZZ_CHECKS, headers=fuzz_env["headers"])

    fuzz()
    # The run reached the model, not only the validation in front of it.
    if label == "POST /chat/completions":
        assert answered[200, "application/json"], answered
        assert answered[200, "text/event-stream; charset=utf-8"], answered
    assert any(status == 200 for status, _ in answered), answered
