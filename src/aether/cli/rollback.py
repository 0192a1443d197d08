"""``aether rollback``: a new release of an earlier one's code and config (the previous
successful release, or ``--to v3`` / a deployment id)."""

from __future__ import annotations

from typing import Any

import click

from aether.cli.connection import (
    app_option,
    open_api,
    resolve_app,
    rollout_timeout_option,
    token_option,
)
from aether.cli.output import emit, format_option


@click.command(name="rollback")
@app_option()
@click.option(
    "--to",
    "to",
    metavar="RELEASE",
    help="Release to go back to: v3 (see `aether releases`) or a deployment id"
    " [default: the previous successful release].",
)
@click.option("--no-wait", is_flag=True, help="Return once the new deployment is registered.")
@rollout_timeout_option
@token_option
@format_option
def rollback(
    app: str | None,
    to: str | None,
    no_wait: bool,
    timeout_secs: float,
    token: str | None,
    output_format: str,
) -> None:
    """Roll back to an earlier release: its code, config vars, one-off --env, start command
    and health check come back as a new release, at the current scale. The app's config
    becomes that release's (later deploys take it).
    """
    from aether.cli.progress import follow_with_progress
    from aether.client.apps import rollback as request_rollback

    name = resolve_app(app)
    with open_api(token) as api:
        created = request_rollback(api, name, to=to)
        deployment: dict[str, Any] = dict(created)
        if not no_wait and not (created["unchanged"] and created["status"] == "running"):
            deployment.update(follow_with_progress(api, created["id"], timeout_secs=timeout_secs))
    emit(deployment, _render)


def _render(deployment: dict[str, Any]) -> str:
    digest = (deployment.get("artifact_digest") or "")[:12]
    release = f"v{deployment.get('release')}"
    if deployment.get("unchanged"):
        text = f"Unchanged: {deployment.get('app_name')} already runs {release} ({digest})"
    else:
        text = (
            f"Rolled back {deployment.get('app_name')}: release {release} runs {digest} with"
            f" config v{deployment.get('config_version') or 0}"
            f" (deployment {deployment.get('id')}): {deployment.get('status')}"
        )
    if deployment.get("url"):
        text += f"\n  url     {deployment['url']}"
    return text
