"""What an SBOM lists: read a CycloneDX JSON document into its components and their licences.

The server reads the SBOM a layered artifact names when a deployment of it is created
(``AETHER_REQUIRE_SBOM``, the deny lists), so this is the standard library alone: no schema
validator at runtime, and cyclonedx-python-lib's model (:mod:`aether.pack.sbom`, which writes
SBOMs) is slow to import and accepts documents that are not CycloneDX at all. The checks are
structural: a JSON object with ``bomFormat`` ``CycloneDX`` and a 1.x ``specVersion``, whose
``components`` (and nested ``components``) each have a name, and whose licences are SPDX ids,
names or expressions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aether.errors import IntegrityError

_SPEC_VERSION = re.compile(r"1\.[0-9]+")
_EXPRESSION_WORDS = re.compile(r"[A-Za-z0-9.+-]+")
_OPERATORS = {"AND", "OR", "WITH"}


@dataclass(frozen=True)
class Component:
    name: str  # with its npm scope: "@babel/core"
    version: str | None
    licenses: tuple[str, ...]  # SPDX ids or names, and the ids an expression mentions


@dataclass(frozen=True)
class SbomSummary:
    spec_version: str
    components: tuple[Component, ...]


def read_sbom(raw: bytes) -> SbomSummary:
    """The SBOM in ``raw``; IntegrityError saying what is wrong when it is not CycloneDX JSON."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise IntegrityError(f"the SBOM is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("bomFormat") != "CycloneDX":
        raise IntegrityError('the SBOM is not CycloneDX (no "bomFormat": "CycloneDX")')
    version = data.get("specVersion")
    if not isinstance(version, str) or not _SPEC_VERSION.fullmatch(version):
        raise IntegrityError(f"the SBOM's specVersion {version!r} is not a CycloneDX 1.x version")
    return SbomSummary(version, tuple(_components(data.get("components", []), "components")))


def _components(items: Any, where: str) -> Iterator[Component]:
    if not isinstance(items, list):
        raise IntegrityError(f"the SBOM's {where} is not a list")
    for index, item in enumerate(items):
        here = f"{where}[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise IntegrityError(f"the SBOM's {here} has no name")
        group, version = item.get("group"), item.get("version")
        if not (group is None or isinstance(group, str)):
            raise IntegrityError(f"the SBOM's {here}.group is not a string")
        if not (version is None or isinstance(version, str)):
            raise IntegrityError(f"the SBOM's {here}.version is not a string")
        name = f"{group}/{item['name']}" if group else item["name"]
        yield Component(name, version, tuple(_licenses(item.get("licenses", []), here)))
        yield from _components(item.get("components", []), f"{here}.components")


def _licenses(items: Any, where: str) -> Iterator[str]:
    if not isinstance(items, list):
        raise IntegrityError(f"the SBOM's {where}.licenses is not a list")
    for item in items:
        choice = item.get("license") if isinstance(item, dict) else None
        expression = item.get("expression") if isinstance(item, dict) else None
        if isinstance(choice, dict) and isinstance(choice.get("id") or choice.get("name"), str):
            yield choice.get("id") or choice["name"]
        elif isinstance(expression, str):
            words = _EXPRESSION_WORDS.findall(expression)
            yield from (word for word in words if word.upper() not in _OPERATORS)
        else:
            raise IntegrityError(f"the SBOM's {where}.licenses holds {item!r}")


def denied(
    summary: SbomSummary, packages: tuple[str, ...], licenses: tuple[str, ...]
) -> str | None:
    """The first component a deny list names (``name`` or ``name@version``; licence ids,
    compared without regard to case), said in words; None when there is none."""
    names = set(packages)
    banned = {license.lower() for license in licenses}
    for component in summary.components:
        pinned = f"{component.name}@{component.version}"
        if component.name in names or pinned in names:
            return f"package {pinned} is denied (AETHER_SBOM_DENY_PACKAGES)"
        for license in component.licenses:
            if license.lower() in banned:
                return f"package {pinned} carries the denied licence {license} (AETHER_SBOM_DENY_LICENSES)"
    return None
