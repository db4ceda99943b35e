"""Schemathesis against the OpenAPI spec, in process, as each role: no 5xx, every response
matches its documented schema. ``JUXING_SCHEMATHESIS_EXAMPLES`` sets cases per operation
and role (default 8: about 180 operations x 5 roles x 8 = several thousand cases)."""

from __future__ import annotations

import os

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from factories import bearer, make_user
from juxing.app import create_app
from juxing.config import Settings
from juxing.models.accounts import Role

EXAMPLES = int(os.environ.get("JUXING_SCHEMATHESIS_EXAMPLES", "8"))
PROGRESS = os.environ.get("JUXING_SCHEMATHESIS_PROGRESS") == "1"


@pytest.fixture
def fuzz_app(settings: Settings, committed_db) -> FastAPI:  # type: ignore[no-untyped-def]
    # Real commits (tables emptied afterwards): a request that breaks its database
    # transaction cannot poison the cases after it, as a shared test transaction would.
    return create_app(settings.model_copy(update={"rate_limits_enabled": False}), db=committed_db)


@pytest.fixture
def role_headers(committed_db) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    with committed_db.session() as session:
        for role in (Role.SHOPPER, Role.CREATOR, Role.MERCHANT, Role.OPERATOR):
            headers[role.value] = bearer(session, make_user(session, role))
    return headers


@pytest.mark.slow
@pytest.mark.timeout(0)  # its length is set by JUXING_SCHEMATHESIS_EXAMPLES
def test_api_as_every_role(fuzz_app: FastAPI, role_headers) -> None:  # type: ignore[no-untyped-def]
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", fuzz_app)
    failures: list[str] = []
    cases = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case) -> None:  # type: ignore[no-untyped-def]
            nonlocal cases
            for headers in role_headers.values():
                cases += 1
                case.call_and_validate(
                    headers=headers, checks=[not_a_server_error, response_schema_conformance]
                )

        try:
            run()
        except Exception as exc:
            failures.append(f"{operation.label}: {str(exc)[:600]}")
            if PROGRESS:  # long runs: see failures as they come (pytest -s)
                print(f"FAIL {failures[-1]}", flush=True)
        if PROGRESS:
            print(f"done {operation.label}: {cases} cases so far", flush=True)
    print(f"schemathesis: {cases} cases, {len(failures)} failing operations")
    assert cases > 0
    assert not failures, "\n\n".join(failures)
