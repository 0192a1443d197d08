"""How one release will run: its supervisor's spec, with sandbox, uid, limits and environment.

The isolation this host offers is probed once (:func:`aether.worker.runtimes.sandbox.probe`).
With bubblewrap the app's view is the system directories, its release folder and dependency
layer (read-only) and its scratch folder (writable, ``HOME`` and ``/tmp`` inside it); as root,
the app also gets its own uid. Limits come from :class:`aether.settings.SandboxSettings`.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from aether.settings import SandboxSettings
from aether.worker.runtimes.appusers import app_uid
from aether.worker.runtimes.base import Release
from aether.worker.runtimes.health import free_port
from aether.worker.runtimes.layers import LAYER_ROOT
from aether.worker.runtimes.sandbox import (
    Bind,
    Isolation,
    drop_to,
    node_prefix,
    probe,
    system_binds,
)
from aether.worker.runtimes.startcmd import process_env, shell_argv
from aether.worker.runtimes.supervision import Limits, Spec, instance_key, record_path

# Log files of this many of an app's most recent deployments are kept.
KEEP_LOGS = 10
SCRATCH_DIR = "scratch"


class Confinement:
    def __init__(self, settings: SandboxSettings, apps_dir: Path, base_env: dict[str, str]):
        self.settings = settings
        self.apps_dir = apps_dir
        self.base_env = base_env

    @functools.cached_property
    def isolation(self) -> Isolation:
        return probe(self.settings.mode, running_as_root=os.geteuid() == 0)

    def limits(self) -> Limits:
        s = self.settings
        return Limits(
            memory_bytes=s.memory_mb * 1024 * 1024,
            max_processes=s.max_processes,
            max_open_files=s.max_open_files,
            nice=s.nice,
            log_max_bytes=s.log_max_bytes,
        )

    def limits_json(self) -> dict[str, object]:
        s = self.settings
        return {
            "limits": {
                "memory_mb_per_process": s.memory_mb,
                "processes": s.max_processes,
                "open_files": s.max_open_files,
                "nice": s.nice,
                "log_bytes": s.log_max_bytes,
                "mechanism": "setrlimit" + (" (per-app uid)" if self.isolation.uid_per_app else ""),
            }
        }

    def spec(
        self,
        release: Release,
        folder: Path,
        *,
        command: str,
        holder: str,
        grace_secs: float,
        node_dir: str | None = None,
        instance: int = 0,
        scratch: Path | None = None,
    ) -> Spec:
        """How to run ``release``; ``node_dir`` (the node of its Node.js major) goes first on
        PATH, and a sandbox's view includes its installation. ``scratch``: another scratch
        folder than the process's own (a standby's)."""
        app_dir = self.apps_dir / release.app_name
        scratch = scratch or app_dir / SCRATCH_DIR / instance_key(release.deployment_id, instance)
        port = free_port()
        isolation = self.isolation
        env = process_env(
            self.base_env,
            folder,
            port=port,
            deployment_id=release.deployment_id,
            digest=release.digest,
            app_env=release.env,
            scratch=scratch,
            node_dir=node_dir,
        )
        uid = None
        argv = shell_argv(command)
        if isolation.uid_per_app and isolation.setpriv:
            uid = app_uid(
                self.settings.uid_registry,
                self.apps_dir,
                release.app_name,
                base=self.settings.uid_base,
            )
            argv = [*drop_to(isolation.setpriv, uid), *argv]
        return Spec(
            app_name=release.app_name,
            deployment_id=release.deployment_id,
            holder=holder,
            owner=release.owner,
            command=argv,
            cwd=str(folder),
            env=env,
            port=port,
            record_path=str(
                record_path(self.apps_dir, release.app_name, release.deployment_id, instance)
            ),
            instance=instance,
            instances=release.replicas,
            logs_dir=str(app_dir / "logs"),
            scratch=str(scratch),
            limits=self.limits(),
            keep_deployments=KEEP_LOGS,
            grace_secs=grace_secs,
            uid=uid,
            bwrap=isolation.bwrap if isolation.isolated else None,
            binds=[vars(b) for b in self._binds(folder, scratch, env)]
            if isolation.isolated
            else [],
        )

    def _binds(self, folder: Path, scratch: Path, env: dict[str, str]) -> list[Bind]:
        """The app's view, parents before children."""
        extra = node_prefix(env.get("PATH", os.defpath))
        binds = system_binds((extra,) if extra else ())
        binds.append(Bind(str(folder)))
        layer = folder / LAYER_ROOT
        if layer.is_symlink():  # node_modules lives in the host's layer cache: only it is seen
            binds.append(Bind(os.path.realpath(layer)))
        binds.append(Bind(str(scratch), "rw"))
        return binds
