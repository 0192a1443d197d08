"""The wire models of aether.models are the one description of what crosses the API: the
store's listing query, the request parser and the OpenAPI document all follow them."""

from __future__ import annotations

import typing

from aether import models
from aether.server.jsonbody import body_types
from aether.server.openapi import schema
from aether.store.deployment_pages import FIELDS


def test_the_listing_query_names_its_columns_after_the_deployment_model_in_order():
    assert [key for key, _ in FIELDS] == list(typing.get_type_hints(models.Deployment))


def test_schemas_follow_the_models_required_keys_and_nullability():
    deployment = schema(models.Deployment)
    assert deployment["required"] == list(typing.get_type_hints(models.Deployment))
    assert deployment["properties"]["start_command"] == {"type": ["string", "null"]}
    assert deployment["properties"]["status"]["enum"] == list(models.DEPLOYMENT_STATUSES)
    artifact = schema(models.Artifact)
    assert "signature" not in artifact["required"]
    assert artifact["properties"]["digest"]["pattern"] == models.DIGEST_RE.pattern
    current = schema(models.AppWithCurrent)["properties"]["current"]
    assert current == {"oneOf": [deployment, {"type": "null"}]}


def test_the_deployment_request_parser_takes_its_fields_from_the_model():
    required, optional = body_types(models.DeploymentRequest)
    assert required == {"app_name": str, "artifact_digest": str}
    assert optional["env"] == (dict, type(None))
    assert optional["replicas"] is int


def test_served_schemas_are_the_models(api):
    paths = api.get("/openapi.json", as_=None).json()["paths"]
    shown = paths["/deployments/{deployment_id}"]["get"]["responses"]["200"]
    assert shown["content"]["application/json"]["schema"] == schema(models.Deployment)
    listed = paths["/artifacts"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listed["schema"]["properties"]["artifacts"]["items"] == schema(models.Artifact)
    created = paths["/apps"]["post"]["responses"]["201"]["content"]["application/json"]
    assert created["schema"] == schema(models.App)
    request = paths["/deployments"]["post"]["requestBody"]["content"]["application/json"]
    assert request["schema"] == schema(models.DeploymentRequest, additionalProperties=False)


def test_rows_become_the_api_objects():
    row = {
        "id": "d1",
        "app_name": "shop",
        "artifact_digest": "ab" * 32,
        "status": "running",
        "runtime": "nodejs",
        "node_version": "20",
        "start_command": None,
        "env": '{"A": "1"}',
        "replicas": 1,
        "health_path": None,
        "failure_reason": None,
        "endpoint": None,
        "rolled_back_from": None,
        "created_at": "2024-01-01T00:00:00+00:00",
        "rollout_started_at": None,
        "rollout_completed_at": None,
        "storage_key": "not shown",
    }
    shown = models.deployment_from(row, "http://shop.localhost:8080/")
    assert list(shown) == list(typing.get_type_hints(models.Deployment))
    assert shown["env"] == {"A": "1"} and "storage_key" not in shown
