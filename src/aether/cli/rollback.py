"""``aether rollback``: redeploy the previous successful release (or a given deployment)."""

from __future__ import annotations

import click

from aether.cli.connection import (
    app_option,
    open_api,
    resolve_app,
    rollout_timeout_option,
    token_option,
)
from aether.cli.output import emit, format_option
from aether.models import Deployment


@click.command(name="rollback")
@app_option()
@click.option(
    "--to",
    "to",
    metavar="DEPLOYMENT_ID",
    help="Deployment whose artifact and settings to redeploy (default: the previous successful one).",
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
    """Redeploy an earlier release's artifact and settings as a new deployment."""
    from aether.cli.progress import Progress
    from aether.client.apps import rollback as request_rollback
    from aether.client.follow import follow_deployment

    name = resolve_app(app)
    progress = Progress()
    with open_api(token) as api:
        deployment = request_rollback(api, name, to=to)
        if not no_wait:
            progress("rollout", 0, None)
            try:
                deployment = follow_deployment(
                    api, deployment["id"], on_event=progress.event, timeout_secs=timeout_secs
                )
            finally:
                progress.close()
    emit(deployment, _render)


def _render(deployment: Deployment) -> str:
    digest = (deployment.get("artifact_digest") or "")[:12]
    text = (
        f"Rolled back {deployment.get('app_name')} to {digest} "
        f"(deployment {deployment.get('id')}): {deployment.get('status')}"
    )
    if deployment.get("url"):
        text += f"\n  url     {deployment['url']}"
    return text
