"""Schemathesis against the OpenAPI spec, in process, as each role: no 5xx, every response
matches its documented schema. ``JUXING_SCHEMATHESIS_EXAMPLES`` sets cases per operation
and role (default 8: about 180 operations x 5 roles x 8 = several thousand cases)."""

from __future__ import annotations

import os

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from factories import bearer, make_user
from juxing.app import create_app
from juxing.config import Settings
from juxing.models.accounts import Role

EXAMPLES = int(os.environ.get("JUXING_SCHEMATHESIS_EXAMPLES", "8"))


@pytest.fixture
def fuzz_app(settings: Settings, db) -> FastAPI:  # type: ignore[no-untyped-def]
    return create_app(settings.model_copy(update={"rate_limits_enabled": False}), db=db)


@pytest.fixture
def api_schema(fuzz_app: FastAPI):  # type: ignore[no-untyped-def]
    return schemathesis.openapi.from_asgi("/api/openapi.json", fuzz_app)


@pytest.fixture
def role_headers(session) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    for role in (Role.SHOPPER, Role.CREATOR, Role.MERCHANT, Role.OPERATOR):
        headers[role.value] = bearer(session, make_user(session, role))
    return headers


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_as_every_role(case, role_headers) -> None:  # type: ignore[no-untyped-def]
    for headers in role_headers.values():
        case.call_and_validate(
            headers=headers, checks=[not_a_server_error, response_schema_conformance]
        )
