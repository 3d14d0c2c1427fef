"""Property-based fuzzing of the OpenAPI schema (schemathesis) against the ASGI app over a real index.

Every operation gets a bounded number of generated requests (valid and invalid ones); every
response must be declared in the schema (status code, content type, headers, body shape) and
none may be a 5xx. It runs twice: against a server with API keys (the key is given with every
request, so the auth checks, e.g. that a request without it is refused, run too) and against an
open server (no keys, none sent).
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is a test dependency: pip install -e '.[test]'")
from hypothesis import HealthCheck, settings  # noqa: E402

from tests.conftest import make_settings  # noqa: E402

pytestmark = [pytest.mark.model, pytest.mark.server]

KEY = "fuzz-key"
MAX_EXAMPLES = 25


@pytest.fixture(scope="module", params=["with-keys", "open"])
def fuzz_app(request, built_index):
    from api.main import create_app

    # rate limits on, but generous: the fuzzer must not be throttled into a sea of 429s (the
    # auth checks send wrong keys on purpose)
    keys = {"api_keys": KEY} if request.param == "with-keys" else {}
    app = create_app(make_settings(built_index, rate_limit=100_000, auth_failure_limit=100_000, **keys))
    app.state.holder.warm()
    app.state.fuzz_headers = {"Authorization": f"Bearer {KEY}"} if keys else {}
    return app


@pytest.fixture(scope="module")
def api_schema(fuzz_app):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


# (method, path, fuzz with invalid data too): operations without parameters have no invalid data
OPERATIONS = [
    ("POST", "/ask", True), ("GET", "/ask", True), ("GET", "/ask/stream", True),
    ("GET", "/stats", False), ("GET", "/healthz", False), ("GET", "/readyz", False),
]
CASES = [(m, p, mode) for m, p, neg in OPERATIONS for mode in (("positive", "negative") if neg else ("positive",))]


# One test per operation and mode, driven by hypothesis directly (schemathesis' lazy
# ``from_fixture`` does not work with pytest 9). Positive data must be answered, negative
# data refused with a declared 4xx; both must match the schema and never be a 5xx.
@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {mode}" for m, p, mode in CASES])
def test_every_operation_answers_within_its_schema(fuzz_app, api_schema, method, path, mode):
    from hypothesis import given

    from schemathesis import GenerationMode

    operation = api_schema[path][method]
    strategy = operation.as_strategy(GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE)
    statuses: list[int] = []

    @given(case=strategy)
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
    def fuzz(case):
        response = case.call_and_validate(headers=fuzz_app.state.fuzz_headers)
        statuses.append(response.status_code)

    fuzz()
    assert statuses and max(statuses) < 500, statuses


def test_the_fuzzed_schema_covers_the_api(fuzz_app):
    paths = fuzz_app.openapi()["paths"]
    for p in ("/ask", "/ask/stream", "/stats", "/healthz", "/readyz"):
        assert p in paths
    # protected operations declare their auth and rate-limit answers, so they validate; an open
    # server's schema asks for no key
    keyed = bool(fuzz_app.state.guard.keys)
    for p, method in (("/ask", "post"), ("/ask", "get"), ("/ask/stream", "get"), ("/stats", "get")):
        op = paths[p][method]
        assert "429" in op["responses"] and ("401" in op["responses"]) == keyed, (p, method)
        assert bool(op.get("security")) == keyed, (p, method)
    assert "413" in paths["/ask"]["post"]["responses"]
