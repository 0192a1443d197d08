"""``aether ps`` / ``status`` (what runs), ``scale`` and ``restart`` (a new rollout, followed
like a deploy)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from aether.cli.connection import (
    app_option,
    one_app,
    open_api,
    resolve_app,
    rollout_timeout_option,
    token_option,
)
from aether.cli.output import emit, format_option

_APP_ARGUMENT = click.argument("app_argument", metavar="[APP]", required=False)


@click.command(name="ps")
@_APP_ARGUMENT
@app_option()
@token_option
@format_option
def ps(app_argument: str | None, app: str | None, token: str | None, output_format: str) -> None:
    """Show an app's instances: state, health, restarts, age, host and worker.

    \b
    Examples:
      aether ps web
      aether ps web --format json
    """
    emit(_status(app_argument, app, token), _render_ps)


@click.command(name="status")
@_APP_ARGUMENT
@app_option()
@token_option
@format_option
def status(
    app_argument: str | None, app: str | None, token: str | None, output_format: str
) -> None:
    """Show what an app runs: its release, instances and the last rollout's outcome, and
    say so plainly when no live worker looks after it."""
    emit(_status(app_argument, app, token), _render_status)


@click.command(name="scale")
@_APP_ARGUMENT
@click.argument("replicas", type=int, metavar="N", required=False)
@app_option()
@click.option("--no-wait", is_flag=True, help="Return once the new release is registered.")
@rollout_timeout_option
@token_option
@format_option
def scale(
    app_argument: str | None,
    replicas: int | None,
    app: str | None,
    no_wait: bool,
    timeout_secs: float,
    token: str | None,
    output_format: str,
) -> None:
    """Run N instances of the app (0 stops it and keeps it: its config and releases stay;
    scaling up starts it again). A new release of the current one, followed like a deploy.

    \b
    Examples:
      aether scale web 3
      aether scale --app web 0
    """
    from aether.client.apps import scale as request_scale

    if replicas is None and app_argument is not None and app_argument.isdigit():
        replicas = int(app_argument)  # aether scale --app web 3
        app_argument = None
    if replicas is None:
        raise click.UsageError("how many instances? aether scale APP N")
    name = resolve_app(one_app(app_argument, app))
    _rollout(token, no_wait, timeout_secs, lambda api: request_scale(api, name, replicas))


@click.command(name="restart")
@_APP_ARGUMENT
@app_option()
@click.option("--no-wait", is_flag=True, help="Return once the restart is registered.")
@rollout_timeout_option
@token_option
@format_option
def restart(
    app_argument: str | None,
    app: str | None,
    no_wait: bool,
    timeout_secs: float,
    token: str | None,
    output_format: str,
) -> None:
    """Restart the app's running release, instance by instance, health-gated like a
    deploy; exits non-zero when the new instances do not come up (the old ones keep
    serving)."""
    from aether.client.apps import restart as request_restart

    name = resolve_app(one_app(app_argument, app))
    _rollout(token, no_wait, timeout_secs, lambda api: request_restart(api, name))


def _status(app_argument: str | None, app: str | None, token: str | None) -> dict[str, Any]:
    from aether.client.apps import status as request_status

    name = resolve_app(one_app(app_argument, app))
    with open_api(token) as api:
        return dict(request_status(api, name))


def _rollout(token: str | None, no_wait: bool, timeout_secs: float, request: Any) -> None:
    from aether.cli.progress import follow_with_progress

    with open_api(token) as api:
        created = request(api)
        deployment: dict[str, Any] = dict(created["deployment"])
        deployment["unchanged"] = created["unchanged"]
        deployment["kind"] = created["release"]["kind"]
        if not no_wait and not (created["unchanged"] and deployment["status"] == "running"):
            deployment.update(
                follow_with_progress(api, deployment["id"], timeout_secs=timeout_secs)
            )
    emit(deployment, _render_rollout)


def _render_rollout(deployment: dict[str, Any]) -> str:
    app, release = deployment.get("app_name"), f"v{deployment.get('release')}"
    if deployment.get("unchanged"):
        return f"Unchanged: {app} already runs {release} with {deployment.get('replicas')}"
    what = "Restarted" if deployment.get("reason") == "restart" else "Scaled"
    return (
        f"{what} {app}: release {release}, {deployment.get('replicas')} instance(s)"
        f" (deployment {deployment.get('id')}): {deployment.get('status')}"
    )


def _render_ps(data: dict[str, Any]) -> str:
    lines = [_header(data)]
    if data.get("instances"):
        rows = [("ID", "RELEASE", "STATE", "HEALTH", "RESTARTS", "AGE", "HOST", "WORKER")]
        for item in data["instances"]:
            rows.append(
                (
                    item["id"],
                    f"v{item['release']}" if item.get("release") else "-",
                    item["state"],
                    item["health"],
                    str(item["restarts"]),
                    age(item.get("started_at")),
                    item["host"],
                    item["worker"],
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines += [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
        ]
    else:
        lines.append("no instances")
    return "\n".join(lines + _notice(data))


def _render_status(data: dict[str, Any]) -> str:
    items = data.get("instances") or []
    healthy = sum(1 for i in items if i["health"] == "healthy")
    lines = [_header(data), f"instances  {healthy}/{data.get('replicas', 0)} healthy"]
    last = data.get("last_rollout")
    if last:
        what = "restart" if last.get("reason") == "restart" else "rollout"
        text = f"last {what}  v{last.get('release')} {last.get('status')}"
        if last.get("failure_reason"):
            text += f": {last['failure_reason']}"
        lines.append(text)
    return "\n".join(lines + _notice(data))


def _header(data: dict[str, Any]) -> str:
    release = f"v{data['release']}" if data.get("release") else "none running"
    if data.get("release") and data.get("replicas") == 0:
        release += " (scaled to 0)"
    return f"{data['app']}  release {release}"


def _notice(data: dict[str, Any]) -> list[str]:
    worker = data.get("worker") or {}
    return [] if worker.get("live", True) else [f"warning: {worker.get('message')}"]


def age(started_at: str | None, *, now: datetime | None = None) -> str:
    """``2026-01-01T00:00:00Z`` → ``3m`` (how long ago); ``-`` when unknown."""
    if not started_at:
        return "-"
    try:
        then = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
    except ValueError:
        return "-"
    secs = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs // size}{unit}"
    return f"{secs}s"
