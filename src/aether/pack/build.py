"""``build_artifact``: project folder → deterministic artifact, manifest, SBOM and signature.

The phases (stage, install, build, walk, pack, check, sbom, sign) report through
``on_progress(phase, done, total)`` and are timed for ``PackResult.timings_ms``. The project is
staged first (``prepare``: mirrored, installed and built under the cache dir, never in the
project itself); the walker then packs the staged tree with the cached production
``node_modules`` mounted in. The artifact is written to a temporary file beside its final
path and renamed into place, so a reader never sees half an artifact; one whose native files
cannot run on the target is removed again before anyone can upload it.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aether.errors import ConfigError, IOFailure, UsageError
from aether.pack.archive import archive_file, gc_paused
from aether.pack.ignore import IgnoreRules
from aether.pack.layout import Layout
from aether.pack.manifest import write_manifest
from aether.pack.options import PackOptions, PackResult
from aether.pack.packer import FileRecord, TreeContents
from aether.pack.partition import Plan, plan_entries
from aether.pack.prepare import Prepared, check_start, prepare
from aether.pack.project import read_package_json
from aether.pack.sidecars import write_sbom, write_signature
from aether.pack.timing import timed
from aether.pack.walk import Entry, Walker
from aether.userconfig import cache_dir

Progress = Callable[[str, int, int | None], None]
log = logging.getLogger("aether.pack")


def build_artifact(
    project_dir: Path,
    options: PackOptions,
    *,
    on_progress: Progress | None = None,
    environ: Mapping[str, str] | None = None,
    keep: list[object] | None = None,
) -> PackResult:
    """Build the artifact for the Node.js project at ``project_dir``.

    ``keep``: the pack's per-file objects (the walk, the records) are appended to it rather
    than freed on the way out, which takes ~10 ms for 50,000 files; a command that ends the
    process right after (``os._exit``) never pays for it. They, and every other object alive
    then, are moved out of the cyclic collector's reach (``gc.freeze``).
    """
    environ = os.environ if environ is None else environ
    root = project_dir.expanduser().resolve()
    read_package_json(root)  # a usage error before anything else
    layout = (
        Layout.choose_layered(root, options.out)
        if options.layered
        else Layout.choose(root, options.out, options.compression)
    )
    job = _Job(
        root=root,
        layout=layout,
        options=options,
        environ=environ,
        epoch=_source_date_epoch(options, environ),
        progress=on_progress or _quiet,
        keep=keep,
    )
    if options.signing_key:
        from aether.pack.signing import load_private_key

        load_private_key(options.signing_key)  # fail before the slow part
    return job.run()


@dataclass(eq=False, repr=False)
class _Job:
    """One pack: its inputs, and the phases that turn them into files."""

    root: Path
    layout: Layout
    options: PackOptions
    environ: Mapping[str, str]
    epoch: int
    progress: Progress
    keep: list[object] | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def run(self) -> PackResult:
        started = time.perf_counter()
        cache = self.options.cache_dir or cache_dir(self.environ)
        excluded = tuple(self.layout.excluded_from(self.root))
        prepared = prepare(self.root, self.options, cache, excluded, self.environ, self.progress)
        spent = prepared.tree.timings
        install = round(spent.get("install", 0.0) + spent.get("deps", 0.0), 1)
        build = spent.get("build", 0.0)
        total = (time.perf_counter() - started) * 1000
        self.timings.update(stage=round(total - install - build, 1), install=install, build=build)
        # No cyclic collection before the pack's records are freed again (when this
        # returns): one would walk all of them, tens of thousands of objects with no cycles.
        # Records the caller keeps are frozen out of the collector for the same reason.
        with gc_paused():
            result = self._pack_prepared(prepared)
            if self.keep:
                gc.freeze()
            return result

    def _pack_prepared(self, prepared: Prepared) -> PackResult:
        with timed(self.timings, "walk"):
            walker, top = self.walk(prepared)
            self._keep((walker, top))
            start_warnings = check_start(
                prepared, walker, self.options.start_command, required=self.options.require_start
            )
        if self.options.layered:
            return self._pack_layered(prepared, walker, top, start_warnings)
        with timed(self.timings, "pack"):
            plan = plan_entries(walker, top)
            self._keep(plan)
            contents, digest, size = self.pack(walker, plan)
            self._keep(contents)
        if self.options.native_check:  # --no-native-check: not even looked at
            with timed(self.timings, "natives"):
                self.check_natives(prepared, walker, contents.files)
        tree = prepared.tree
        with timed(self.timings, "sbom"):
            sbom = write_sbom(
                tree.root,
                prepared.package,
                self.layout,
                self.options,
                self._sbom_epoch(),
                self.progress,
                installed_root=tree.installed_root,
            )
        with timed(self.timings, "sign"):
            signature_hex = write_signature(
                self.layout, self.options.signing_key, digest, self.progress
            )
        return PackResult(
            artifact=self.layout.artifact,
            digest=digest,
            size_bytes=size,
            manifest=self.layout.manifest,
            sbom=sbom,
            signature=self.layout.signature if signature_hex else None,
            signature_hex=signature_hex,
            compression=self.options.compression,
            files=len(contents.files),
            bytes_in=contents.bytes_in,
            timings_ms=self.timings,
            build=_build_facts(prepared),
            node_major=prepared.target.node_major,
            start_command=prepared.start_command,
            warnings=prepared.warnings + start_warnings,
        )

    def _pack_layered(
        self, prepared: Prepared, walker: Walker, top: list[Entry], start_warnings: tuple[str, ...]
    ) -> PackResult:
        """Format 2: the layers, the SBOM, then the artifact manifest and its signature."""
        from aether.pack.layered import write_layers

        layout = self.layout
        assert layout.folder is not None  # choose_layered always names the folder
        compression = self.options.compression
        with timed(self.timings, "pack"):
            layers = write_layers(
                walker,
                layout.folder,
                compression,
                self.epoch,
                self.progress,
                self._deps_cache(prepared),
                # a workspace's node_modules links to its packages: one layer keeps them
                split_deps=not prepared.tree.app_dir,
                top=top,
            )
            self._keep(layers)
        if self.options.native_check:  # --no-native-check: not even looked at
            with timed(self.timings, "natives"):
                # a cached deps layer was checked when it was packed
                packed = [layer.contents.files for layer in layers if layer.contents is not None]
                self.check_natives(prepared, walker, *packed)
        tree = prepared.tree
        with timed(self.timings, "sbom"):
            sbom = write_sbom(
                tree.root,
                prepared.package,
                layout,
                self.options,
                self._sbom_epoch(),
                self.progress,
                installed_root=tree.installed_root,
            )
        from aether.digests import sha256_file
        from aether.pack.artifact_manifest import ArtifactManifest, artifact_digest
        from aether.pack.manifest import write_bytes_atomic

        manifest = ArtifactManifest(
            layers=tuple(layer.ref for layer in layers),
            source_date_epoch=self.epoch,
            node_major=prepared.target.node_major,
            sbom_sha256=sha256_file(sbom) if sbom is not None else None,
        )
        raw = manifest.encode()
        digest = artifact_digest(raw)
        write_bytes_atomic(layout.artifact, raw)
        with timed(self.timings, "sign"):
            signature_hex = write_signature(layout, self.options.signing_key, digest, self.progress)
        contents_files = sum(layer.ref.files for layer in layers)
        return PackResult(
            artifact=layout.artifact,
            digest=digest,
            size_bytes=sum(layer.ref.size for layer in layers) + len(raw),
            manifest=layout.artifact,
            sbom=sbom,
            signature=layout.signature if signature_hex else None,
            signature_hex=signature_hex,
            compression=compression,
            files=contents_files,
            bytes_in=sum(layer.ref.bytes for layer in layers),
            timings_ms=self.timings,
            build=_build_facts(prepared),
            node_major=prepared.target.node_major,
            start_command=prepared.start_command,
            warnings=prepared.warnings + start_warnings,
            layers=tuple(
                {**layer.ref.as_json(), "path": str(layer.path), "reused": layer.reused}
                for layer in layers
            ),
        )

    def _keep(self, value: object) -> None:
        if self.keep is not None:
            self.keep.append(value)

    def _deps_cache(self, prepared: Prepared) -> Any:
        """Where the deps layer is cached: only for a staged build's own production install
        mounted at node_modules (a project packed as it is has no key to trust)."""
        from aether.pack.layered import deps_cache_key

        tree = prepared.tree
        if tree.deps is None or dict(tree.mounts).get("node_modules") is None:
            return None
        try:
            ignore = (tree.root / ".aetherignore").read_bytes()
        except OSError:
            ignore = b""
        extra = json.dumps(
            [hashlib.sha256(ignore).hexdigest(), self.options.native_check, tree.excluded]
        )
        cache = self.options.cache_dir or cache_dir(self.environ)
        return deps_cache_key(
            cache,
            tree.deps.key,
            Path(dict(tree.mounts)["node_modules"]),
            self.options.compression,
            self.epoch,
            extra,
        )

    def walk(self, prepared: Prepared) -> tuple[Walker, list[Entry]]:
        """List the top of the tree; the pack walks the rest as it writes."""
        self.progress("walk", 0, None)
        tree = prepared.tree
        excluded = [*tree.excluded, *self.layout.excluded_from(tree.root)]
        rules = IgnoreRules.for_project(tree.root, excluded)
        walker = Walker(
            os.fspath(tree.root),
            rules,
            skip_unsafe=self.options.skip_unsafe,
            on_skip=_warn_skip,
            mounts=tree.mounts,
            real_bases=tree.real_bases,
        )
        top = walker.children(None)
        self.progress("walk", len(top), len(top))
        return walker, top

    def check_natives(self, prepared: Prepared, walker: Walker, *files: list[FileRecord]) -> None:
        """Refuse (and remove) an artifact whose native files cannot run on the target."""
        from aether.pack.natives import check_natives, record_candidates  # only when checking

        self.progress("natives", 0, None)
        members = [path for records in files for path in record_candidates(records)]
        problems = check_natives(members, walker.source_path, prepared.target)
        if not problems:
            return
        lines = [f"{p.path}: built for {p.binary}; {p.reason}" for p in problems]
        for path in (self.layout.artifact, self.layout.manifest):
            path.unlink(missing_ok=True)
        if self.options.layered and self.layout.folder is not None:
            shutil.rmtree(self.layout.folder / "layers", ignore_errors=True)
        raise UsageError(_native_refusal(lines, prepared))

    def _sbom_epoch(self) -> int | None:
        explicit = self.options.source_date_epoch is not None
        return self.epoch if explicit or "SOURCE_DATE_EPOCH" in self.environ else None

    def pack(self, walker: Walker, plan: Plan) -> tuple[TreeContents, str, int]:
        self.progress("pack", 0, None)
        artifact = self.layout.artifact
        with archive_file(
            plan,
            walker,
            artifact.parent,
            artifact.name,
            self.options.compression,
            self.epoch,
            what=str(artifact),
            on_progress=lambda done, total: self.progress("pack", done, total),
        ) as written:
            # Replacing an older artifact frees its blocks, which can take tens of ms (more
            # on file systems mounted with online discard): the manifest is written meanwhile,
            # and takes the old one's place only once the artifact has.
            replaced = _BackgroundReplace(written.temp, artifact)
            try:
                write_manifest(
                    self.layout.manifest,
                    written.manifest(artifact.name),
                    before_replace=replaced.wait,
                )
            finally:
                replaced.wait()
        return written.contents, written.digest, written.size


def _native_refusal(lines: list[str], prepared: Prepared) -> str:
    shown = "\n  ".join(lines[:10]) + (
        f"\n  … and {len(lines) - 10} more" if len(lines) > 10 else ""
    )
    target = prepared.target
    if prepared.tree.deps is None and prepared.tree.manager is None:
        remedy = (
            "pack without --no-install so aether installs the dependencies for the server "
            "itself, or install them for it yourself "
            f"(npm ci --os={target.os} --cpu={target.cpu}"
            + (f" --libc={target.libc})" if target.libc else ")")
        )
    else:
        remedy = (
            "the package builds its binary on this machine or ships none for the server's "
            "platform: build on a machine like the server (same OS, CPU and Node.js major), "
            "or use a package that publishes prebuilt binaries for it"
        )
    return (
        f"native files cannot run on the server ({target}):\n  {shown}\n"
        f"Nothing was uploaded. To fix it: {remedy}. If you know better, pass "
        "--no-native-check."
    )


def _build_facts(prepared: Prepared) -> dict[str, object]:
    tree = prepared.tree
    return {
        "staged": tree.staged,
        "target": str(prepared.target),
        "package_manager": str(tree.manager) if tree.manager else None,
        "built": tree.built,
        "deps_key": tree.deps.key if tree.deps else None,
        "deps_reused": tree.deps.reused if tree.deps else None,
        "app_dir": tree.app_dir or None,
    }


def _quiet(phase: str, done: int, total: int | None) -> None:
    return None


def _warn_skip(path: str, reason: str) -> None:
    log.warning("skipped %s: %s", path, reason)


def _source_date_epoch(options: PackOptions, environ: Mapping[str, str]) -> int:
    if options.source_date_epoch is not None:
        value = options.source_date_epoch
    else:
        raw = environ.get("SOURCE_DATE_EPOCH", "").strip()
        try:
            value = int(raw) if raw else 0
        except ValueError as exc:
            raise ConfigError(
                f"SOURCE_DATE_EPOCH={raw!r} is not a whole number of seconds"
            ) from exc
    if not 0 <= value < 8**11:
        raise ConfigError(f"SOURCE_DATE_EPOCH={value} is outside what a tar header can hold")
    return value


class _BackgroundReplace:
    """``os.replace(source, target)`` on its own thread; ``wait`` joins it, raising IOFailure."""

    def __init__(self, source: Path, target: Path) -> None:
        self._target = target
        self._error: OSError | None = None
        self._thread = threading.Thread(
            target=self._run, args=(source, target), name="aether-replace", daemon=True
        )
        self._thread.start()

    def _run(self, source: Path, target: Path) -> None:
        try:
            os.replace(source, target)
        except OSError as exc:
            self._error = exc

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise IOFailure(f"cannot write {self._target}: {error.strerror or error}") from error
