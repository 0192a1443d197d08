"""The CycloneDX 1.5 SBOM: valid, reproducible, with correct purls and the dependency graph."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from pack_support import integrity, package_lock

from aether.pack import PackOptions, build_artifact
from aether.pack.sbom import build_sbom
from plugins.fresh_imports import modules_loaded_by


def sbom_of(project: Path, environ: dict[str, str] | None = None) -> str:
    result = build_artifact(project, PackOptions(install=False), environ=environ or {})
    assert result.sbom is not None
    return result.sbom.read_text()


def test_validates_against_the_1_5_schema(sample: Path) -> None:
    text = sbom_of(sample)
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(text) is None
    assert json.loads(text)["specVersion"] == "1.5"


def test_components_have_purls_hashes_and_licences(sample: Path) -> None:
    document = json.loads(sbom_of(sample))
    components = {c["purl"]: c for c in document["components"]}
    assert set(components) == {
        "pkg:npm/%40types/node@20.1.0",
        "pkg:npm/left-pad@1.3.0",
        "pkg:npm/repeat-string@1.6.1",
    }  # jest is dev-only: left out
    scoped = components["pkg:npm/%40types/node@20.1.0"]
    assert (scoped["group"], scoped["name"], scoped["version"]) == ("@types", "node", "20.1.0")
    assert scoped["licenses"] == [{"license": {"id": "MIT"}}]
    expected = base64.b64decode(integrity("@types/node")[7:]).hex()
    assert scoped["hashes"] == [{"alg": "SHA-512", "content": expected}]
    assert document["metadata"]["component"]["purl"] == "pkg:npm/%40acme/web@1.2.3"


def test_dependency_graph_follows_node_resolution(sample: Path) -> None:
    document = json.loads(sbom_of(sample))
    graph = {d["ref"]: set(d.get("dependsOn", [])) for d in document["dependencies"]}
    assert graph["pkg:npm/%40acme/web@1.2.3"] == {
        "pkg:npm/%40types/node@20.1.0",
        "pkg:npm/left-pad@1.3.0",
    }
    assert graph["pkg:npm/left-pad@1.3.0"] == {"pkg:npm/repeat-string@1.6.1"}


def test_reproducible_without_serial_or_timestamp(sample: Path, tmp_path: Path) -> None:
    first = sbom_of(sample)
    copy = tmp_path / "copy"
    shutil.copytree(sample, copy, symlinks=True)
    assert sbom_of(copy) == first
    document = json.loads(first)
    assert "serialNumber" not in document
    assert "timestamp" not in document["metadata"]


def test_source_date_epoch_gives_a_fixed_timestamp(sample: Path) -> None:
    document = json.loads(sbom_of(sample, {"SOURCE_DATE_EPOCH": "1700000000"}))
    assert document["metadata"]["timestamp"].startswith("2023-11-14T22:13:20")


@pytest.mark.parametrize("version", [2, 3])
def test_lockfile_versions_2_and_3(sample: Path, version: int) -> None:
    (sample / "package-lock.json").write_text(json.dumps(package_lock(version)))
    package = json.loads((sample / "package.json").read_text())
    text = build_sbom(sample, package, source_date_epoch=None)
    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(text) is None
    assert len(json.loads(text)["components"]) == 3


def test_hidden_lockfile_is_the_fallback(sample: Path) -> None:
    (sample / "package-lock.json").unlink()
    document = json.loads(sbom_of(sample))
    assert len(document["components"]) == 3


def test_no_sbom_removes_a_stale_one(sample: Path) -> None:
    first = build_artifact(sample, PackOptions(install=False), environ={})
    assert first.sbom is not None and first.sbom.exists()
    second = build_artifact(sample, PackOptions(install=False, sbom=False), environ={})
    assert second.sbom is None
    assert not first.sbom.exists()
    assert second.as_json()["sbom"] is None


def _pack_in_a_fresh_process(project: Path) -> bool:
    """Pack in a new interpreter; True when it had to import cyclonedx (build the SBOM)."""
    code = (
        "from pathlib import Path; from aether.pack import PackOptions, build_artifact;"
        f"build_artifact(Path({str(project)!r}), PackOptions(install=False), environ={{}})"
    )
    return "cyclonedx" in modules_loaded_by(code, prefix="cyclonedx")


def test_unchanged_inputs_reuse_the_sbom_and_changed_ones_rebuild_it(sample: Path) -> None:
    assert _pack_in_a_fresh_process(sample) is True
    first = (sample / ".aether" / "app.tar.zst.cdx.json").read_text()
    (sample / "server.js").write_text("// a code-only change\n")
    assert _pack_in_a_fresh_process(sample) is False, "same lockfile: the SBOM is reused"
    assert (sample / ".aether" / "app.tar.zst.cdx.json").read_text() == first

    lock = json.loads((sample / "package-lock.json").read_text())
    lock["packages"]["node_modules/left-pad"]["version"] = "9.9.9"
    (sample / "package-lock.json").write_text(json.dumps(lock))
    assert _pack_in_a_fresh_process(sample) is True
    assert "9.9.9" in (sample / ".aether" / "app.tar.zst.cdx.json").read_text()


def test_an_edited_sbom_is_rebuilt_not_reused(sample: Path) -> None:
    pristine = sbom_of(sample)
    sbom = sample / ".aether" / "app.tar.zst.cdx.json"
    sbom.write_text(pristine.replace("left-pad", "right-pad"))
    assert sbom_of(sample) == pristine
