"""Schemathesis against the API's OpenAPI schema: generated requests find no server error."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from packshot.api.app import create_app
from packshot.api.settings import ApiSettings
from packshot.jobs import store
from packshot.jobs.kinds import TrainingParams
from packshot.jobs.settings import ServiceSettings

EXAMPLES_PER_OPERATION = 8  # bounded: ~30 operations, well under a minute in all
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


def test_no_server_errors(api_schema) -> None:
    from hypothesis import given

    headers = {"Authorization": f"Bearer {KEY['key']}"}
    failures: list[str] = []
    statuses: dict[int, int] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 20
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
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

        check()
    assert not failures, failures
    assert sum(statuses.values()) >= 2 * len(operations)
    assert statuses.get(200, 0) + statuses.get(201, 0) > 0, statuses  # some got through
    print(statuses)
