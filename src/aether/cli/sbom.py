"""``aether sbom``: the CycloneDX SBOM of an app's release, as the control plane stores it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from aether.cli.connection import open_api, resolve_app, token_option
from aether.cli.listing import table
from aether.cli.output import emit, format_option


@click.command(name="sbom")
@click.argument("app_name", required=False, metavar="APP")
@click.option("--app", "app_option", metavar="NAME", help="App name (same as APP).")
@click.option("--release", metavar="vN", help="The release (default: the newest).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the CycloneDX document to this file.",
)
@token_option
@format_option
def sbom(
    app_name: str | None,
    app_option: str | None,
    release: str | None,
    out: Path | None,
    token: str | None,
    output_format: str,
) -> None:
    """Show the components of APP's SBOM (its newest release, or --release vN).

    The SBOM is the CycloneDX document `aether deploy` uploaded with a layered artifact; the
    server checked it against the artifact's manifest when the release was deployed. A
    single-file artifact, or one packed with --no-sbom, has none (exit 20, not found).
    With --format json the answer holds the whole document under "document".
    """
    from aether.client.sbom import release_sbom

    name = resolve_app(app_name or app_option)
    with open_api(token) as api:
        found = release_sbom(api, name, release)
    if out is not None:
        import json

        out.write_text(json.dumps(found["document"], indent=2) + "\n", encoding="utf-8")
    emit(found, render)


def render(data: dict[str, Any]) -> str:
    components = data["document"].get("components") or []
    rows = [
        [
            f"{item['group']}/{item['name']}" if item.get("group") else item["name"],
            item.get("version") or "-",
            ", ".join(_licenses(item)) or "-",
        ]
        for item in components
    ]
    head = (
        f"{data['app']} {data['release']}: artifact {data['artifact_digest'][:12]}, "
        f"SBOM {data['sbom_sha256'][:12]}, {len(rows)} components"
    )
    return head + ("\n" + table(["NAME", "VERSION", "LICENCE"], rows) if rows else "")


def _licenses(item: dict[str, Any]) -> list[str]:
    found = []
    for entry in item.get("licenses") or []:
        choice = entry.get("license") or {}
        found.append(choice.get("id") or choice.get("name") or entry.get("expression") or "?")
    return found
