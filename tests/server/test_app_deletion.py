"""Deleting an app removes its artifacts' objects too, and never pulls bytes from under
another app that deploys them."""

from __future__ import annotations

import artifacts_support
from artifacts_support import Uploader, blob

from aether.store import deployments as deployment_store

store_kind = artifacts_support.store_kind
registry_api = artifacts_support.registry_api


def test_deleting_an_app_deletes_its_artifact_objects(registry_api):
    api = registry_api()
    up = Uploader(api)
    stored = up.upload(blob(300)[0]).json()
    key = stored["storage_key"]
    assert api.client.portal.call(api.state.blobs.head, key) is not None
    assert api.delete("/apps/shop", as_="deployer").status_code == 204
    assert api.client.portal.call(api.state.blobs.head, key) is None
    assert api.head(f"/artifacts/{stored['digest']}").status_code == 404


def test_an_app_whose_artifact_another_app_deploys_cannot_be_deleted(registry_api):
    api = registry_api()
    up = Uploader(api)
    stored = up.upload(blob(301)[0]).json()
    prod = api.post("/apps", json={"name": "shop-prod"}, as_="deployer").json()
    api.run(
        deployment_store.create_deployment,
        deployment_store.DeploymentSpec(app_id=prod["id"], artifact_id=stored["artifact_id"]),
    )
    refused = api.delete("/apps/shop", as_="deployer")
    assert refused.status_code == 409
    assert "shop-prod" in refused.json()["message"]
    key = stored["storage_key"]
    assert api.client.portal.call(api.state.blobs.head, key) is not None
