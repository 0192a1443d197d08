"""Which artifact a deploy writes: layered only for a server that reads this version's
layered manifests (``GET /config``'s ``artifact_manifest_revision``); an older server, which
would refuse a layer without ``tar_sha256`` as malformed, gets a single-file artifact."""

from __future__ import annotations

from aether.client.deploy import reads_layered


def test_layered_only_for_a_server_that_reads_this_revision() -> None:
    assert reads_layered({"layered_artifacts": True, "artifact_manifest_revision": 2})
    assert reads_layered({"layered_artifacts": True, "artifact_manifest_revision": 3})
    assert not reads_layered({"layered_artifacts": True})  # requires tar_sha256 per layer
    assert not reads_layered({"layered_artifacts": True, "artifact_manifest_revision": 1})
    assert not reads_layered({"layered_artifacts": True, "artifact_manifest_revision": True})
    assert not reads_layered({"layered_artifacts": True, "artifact_manifest_revision": "2"})
    assert not reads_layered({"artifact_manifest_revision": 2})  # no layered artifacts at all
    assert not reads_layered({})
