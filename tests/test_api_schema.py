"""Schemathesis against the API's OpenAPI schema: generated requests find no server error."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from packshot.api.app import create_app
from packshot.api.settings import ApiSettings
from packshot.jobs import store
from packshot.jobs.kinds import TrainingParams
from packshot.jobs.settings import ServiceSettings

EXAMPLES_PER_OPERATION = 8  # bounded: ~30 operations, well under a minute in all
NEGATIVE_EXAMPLES_PER_OPERATION = 4
KEY: dict[str, str] = {}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("schema-studio")
    url = f"sqlite:///{data / 'packshot.db'}"
    service = ServiceSettings(data_dir=data, database_url=url)
    app = create_app(ApiSettings(service=service, rate_limit=100000))
    db = store.Database(url)
    with db.session() as session:
        merchant, KEY["key"] = store.create_merchant(session, "Fuzz")
        store.enqueue(
            session,
            merchant_id=merchant.id,
            product_id=_product(session, merchant.id),
            kind="training",
            params=TrainingParams(photos_dir="/photos", model="tiny", class_word="bag"),
            request={},
            webhook=None,
            prefix="trn",
        )
    db.dispose()
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _product(session, merchant_id: str) -> str:
    from packshot.jobs.models import Product

    session.add(Product(id="prd_fuzz", merchant_id=merchant_id, name="fuzz", class_name="bag"))
    session.commit()
    return "prd_fuzz"


def _fuzz(api_schema, mode: GenerationMode, examples: int) -> dict[int, int]:
    """Every operation called with `examples` requests generated in `mode`; the statuses seen.
    Fails on any server error."""
    from hypothesis import given

    headers = {"Authorization": f"Bearer {KEY['key']}"}
    failures: list[str] = []
    statuses: dict[int, int] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 20
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not (list(operation.body) or operation.query):
            continue  # a path's strings are all valid: nothing of it can be invalid

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case) -> None:
            if case.path.endswith("/events"):
                # A queued job's event stream never ends: the fuzzer gets 404s and 401s here.
                case.path_parameters = {k: "missing" for k in case.path_parameters or {}}
            response = case.call(headers=headers)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")

        try:
            check()
        except Unsatisfiable:  # nothing of it can be invalid (no parameters, no body)
            assert mode is GenerationMode.NEGATIVE, operation.label
    assert not failures, failures
    return statuses


def test_no_server_errors(api_schema) -> None:
    statuses = _fuzz(api_schema, GenerationMode.POSITIVE, EXAMPLES_PER_OPERATION)
    assert sum(statuses.values()) >= 2 * len(list(api_schema.get_all_operations()))
    assert statuses.get(200, 0) + statuses.get(201, 0) > 0, statuses  # some got through
    print(statuses)


def test_invalid_requests_get_client_errors(api_schema) -> None:
    """Requests the schema forbids (wrong types, out of range, missing fields, bad headers):
    each a 4xx, never a server error."""
    statuses = _fuzz(api_schema, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES_PER_OPERATION)
    assert sum(statuses.values()) >= 20 and all(400 <= s < 500 for s in statuses), statuses
    print(statuses)


def test_every_route_refuses_a_body_over_its_limit(api_schema) -> None:
    """Issue 18: a body over its route's limit is refused (413) before anything reads it:
    authentication, parsing, the route. Sent to every operation, with and without a key."""
    oversize = {"name": "x" * int(ApiSettings.max_json_kb * 1024 + 1)}
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if "multipart/form-data" in operation.get_request_payload_content_types():
            continue  # the upload route: its own limit, PACKSHOT_MAX_REQUEST_MB (test_api_guard)
        params = {p.name: "prd_fuzz" for p in operation.path_parameters}
        for headers in ({}, {"Authorization": f"Bearer {KEY['key']}"}):
            case = operation.Case(
                path_parameters=params, body=oversize, media_type="application/json"
            )
            response = case.call(headers=headers)
            assert response.status_code == 413, (operation.label, response.status_code)
            assert response.json()["error"]["code"] == "too_large"
