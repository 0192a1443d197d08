"""Destroying an app removes its artifacts' objects too, and never pulls bytes from under
another app that runs them (those pass to that app)."""

from __future__ import annotations

import artifacts_support
from artifacts_support import Uploader, blob

from release_rows import deploy_release

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


def test_an_artifact_another_app_runs_passes_to_it_when_its_app_is_destroyed(registry_api):
    api = registry_api()
    up = Uploader(api)
    shared = up.upload(blob(301)[0]).json()
    own = up.upload(blob(302)[0]).json()
    prod = api.post("/apps", json={"name": "shop-prod"}, as_="deployer").json()
    api.run(deploy_release, prod["id"], shared["digest"])
    assert api.delete("/apps/shop", as_="deployer").status_code == 204
    head = api.client.portal.call
    assert head(api.state.blobs.head, shared["storage_key"]) is not None
    assert head(api.state.blobs.head, own["storage_key"]) is None
    kept = api.get(f"/artifacts/{shared['digest']}").json()
    assert kept["app_name"] == "shop-prod"
    assert api.head(f"/artifacts/{own['digest']}").status_code == 404
    rollout = api.get("/apps/shop-prod/deployments").json()["deployments"][0]
    assert rollout["artifact_digest"] == shared["digest"]
