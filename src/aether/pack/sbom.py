"""A CycloneDX 1.5 JSON SBOM from ``package-lock.json`` (lockfileVersion 2 and 3).

Every installed non-dev package becomes one component per name@version with its purl
(``pkg:npm/%40scope/name@1.2.3``), the lockfile's integrity hash and its licence; the
dependency graph follows Node's resolution (nearest ``node_modules`` up the tree). The document
is reproducible: no random serial number, and a timestamp only when SOURCE_DATE_EPOCH is set.
Without ``package-lock.json`` npm's hidden lockfile ``node_modules/.package-lock.json`` is used;
without either the SBOM lists the application alone.
"""

from __future__ import annotations

import base64
import datetime
import posixpath
from pathlib import Path
from typing import Any

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, XsUri
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot5
from packageurl import PackageURL

from aether.pack.lockfile import installed_packages, lock_packages

_HASHES = {
    "sha1": HashAlgorithm.SHA_1,
    "sha256": HashAlgorithm.SHA_256,
    "sha384": HashAlgorithm.SHA_384,
    "sha512": HashAlgorithm.SHA_512,
}
_DEP_FIELDS = ("dependencies", "optionalDependencies", "peerDependencies")


def build_sbom(
    project_dir: Path,
    package: dict[str, Any],
    *,
    source_date_epoch: int | None,
    installed_root: Path | None = None,
) -> str:
    """The SBOM as JSON text (``installed_root``: where node_modules is, if not in the project)."""
    bom = Bom()
    bom.serial_number = None  # type: ignore[assignment]  # none: a random one breaks determinism
    # No timestamp without SOURCE_DATE_EPOCH: the clock would break determinism.
    bom.metadata.timestamp = (
        None  # type: ignore[assignment]
        if source_date_epoch is None
        else datetime.datetime.fromtimestamp(source_date_epoch, datetime.UTC)
    )
    root = _root_component(package)
    bom.metadata.component = root
    packages = lock_packages(project_dir, installed_root)
    installed = installed_packages(installed_root or project_dir, packages)
    by_path = _components(installed)
    for component in by_path.values():
        bom.components.add(component)
    graph: dict[str, set[str]] = {}
    for path, entry in [("", packages.get("", {}))] + list(installed.items()):
        targets = graph.setdefault(_ref(root) if path == "" else _ref(by_path[path]), set())
        for name in _dependency_names(entry, package if path == "" else None):
            found = _resolve(path, name, by_path)
            if found is not None:
                targets.add(_ref(found))
    _register(bom, root, graph)
    return JsonV1Dot5(bom).output_as_string(indent=2) + "\n"


def _components(installed: dict[str, dict[str, Any]]) -> dict[str, Component]:
    """One component per purl; every install path maps to it (npm may duplicate packages)."""
    canonical: dict[str, Component] = {}
    return {
        path: canonical.setdefault(_ref(made), made)
        for path, entry in installed.items()
        for made in (_component(path, entry),)
    }


def _ref(component: Component) -> str:
    return component.bom_ref.value or ""


def _register(bom: Bom, root: Component, graph: dict[str, set[str]]) -> None:
    components = {_ref(c): c for c in bom.components} | {_ref(root): root}
    for ref, targets in graph.items():
        bom.register_dependency(components[ref], [components[t] for t in sorted(targets)])


def _root_component(package: dict[str, Any]) -> Component:
    name = str(package.get("name") or "app")
    version = str(package.get("version") or "") or None
    purl = _purl(name, version)
    return Component(
        name=_split(name)[1],
        group=_split(name)[0],
        version=version,
        type=ComponentType.APPLICATION,
        purl=purl,
        bom_ref=purl.to_string(),
    )


def _split(name: str) -> tuple[str | None, str]:
    if name.startswith("@") and "/" in name:
        scope, _, bare = name.partition("/")
        return scope, bare
    return None, name


def _purl(name: str, version: str | None) -> PackageURL:
    scope, bare = _split(name)
    return PackageURL(type="npm", namespace=scope, name=bare, version=version)


def _package_name(path: str, entry: dict[str, Any]) -> str:
    if entry.get("name"):
        return str(entry["name"])
    marker = path.rfind("node_modules/")
    return path[marker + len("node_modules/") :] if marker >= 0 else posixpath.basename(path)


def _component(path: str, entry: dict[str, Any]) -> Component:
    name = _package_name(path, entry)
    version = str(entry.get("version") or "") or None
    purl = _purl(name, version)
    scope, bare = _split(name)
    component = Component(
        name=bare,
        group=scope,
        version=version,
        type=ComponentType.LIBRARY,
        purl=purl,
        bom_ref=purl.to_string(),
        hashes=_hashes(entry.get("integrity")),
        licenses=_licenses(entry.get("license")),
    )
    resolved = entry.get("resolved")
    if isinstance(resolved, str) and resolved.startswith(("https://", "http://")):
        component.external_references.add(
            ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(resolved))
        )
    return component


def _hashes(integrity: object) -> list[HashType]:
    """SRI strings (``sha512-<base64>``, space-separated) as CycloneDX hashes."""
    hashes = []
    for item in str(integrity or "").split():
        algorithm, _, encoded = item.partition("-")
        if algorithm in _HASHES and encoded:
            try:
                content = base64.b64decode(encoded, validate=True).hex()
            except ValueError:
                continue
            hashes.append(HashType(alg=_HASHES[algorithm], content=content))
    return hashes


def _licenses(value: object) -> list[Any]:
    if isinstance(value, dict):
        value = value.get("type")
    if not isinstance(value, str) or not value.strip():
        return []
    return [LicenseFactory().make_from_string(value.strip())]


def _dependency_names(entry: dict[str, Any], root_package: dict[str, Any] | None) -> list[str]:
    names: set[str] = set()
    for source in (entry, root_package or {}):
        for field_name in _DEP_FIELDS:
            deps = source.get(field_name)
            if isinstance(deps, dict):
                names.update(deps)
    return sorted(names)


def _resolve(path: str, name: str, by_path: dict[str, Component]) -> Component | None:
    """Node's lookup: ``<path>/node_modules/<name>``, then each parent, then the top."""
    base = path
    while True:
        candidate = f"{base}/node_modules/{name}" if base else f"node_modules/{name}"
        if candidate in by_path:
            return by_path[candidate]
        if not base:
            return None
        marker = base.rfind("/node_modules/")
        base = base[:marker] if marker >= 0 else ""
