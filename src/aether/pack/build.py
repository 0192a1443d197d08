"""``build_artifact``: project folder → deterministic artifact, manifest, SBOM and signature.

The phases (install, walk, pack, sbom, sign) report through ``on_progress(phase, done,
total)`` and are timed for ``PackResult.timings_ms``. The artifact is written to a temporary
file beside its final path and renamed into place, so a reader never sees half an artifact;
stale SBOM or signature files from an earlier pack are removed when this pack writes none.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aether.errors import ConfigError, IOFailure
from aether.pack.archive import gc_paused, write_archive
from aether.pack.ignore import IgnoreRules
from aether.pack.install import install_dependencies
from aether.pack.layout import Layout
from aether.pack.lockfile import sbom_inputs_key
from aether.pack.manifest import build_manifest, write_manifest, write_text_atomic
from aether.pack.options import PackOptions, PackResult
from aether.pack.packer import TreeContents
from aether.pack.partition import Plan, plan_tree
from aether.pack.project import read_package_json
from aether.pack.walk import Walker

Progress = Callable[[str, int, int | None], None]
log = logging.getLogger("aether.pack")


def build_artifact(
    project_dir: Path,
    options: PackOptions,
    *,
    on_progress: Progress | None = None,
    environ: Mapping[str, str] | None = None,
) -> PackResult:
    """Build the artifact for the Node.js project at ``project_dir``."""
    environ = os.environ if environ is None else environ
    root = project_dir.expanduser().resolve()
    job = _Job(
        root=root,
        package=read_package_json(root),
        layout=Layout.choose(root, options.out, options.compression),
        options=options,
        environ=environ,
        epoch=_source_date_epoch(options, environ),
        progress=on_progress or _quiet,
    )
    if options.signing_key:
        from aether.pack.signing import load_private_key

        load_private_key(options.signing_key)  # fail before the slow part
    # No cyclic collection before the pack's records are freed again (when ``run`` returns):
    # one would walk all of them, tens of thousands of objects with no cycles.
    with gc_paused():
        return job.run()


@dataclass
class _Job:
    """One pack: its inputs, and the phases that turn them into files."""

    root: Path
    package: dict[str, Any]
    layout: Layout
    options: PackOptions
    environ: Mapping[str, str]
    epoch: int
    progress: Progress
    timings: dict[str, float] = field(default_factory=dict)

    def run(self) -> PackResult:
        with _timed(self.timings, "install"):
            self.install()
        with _timed(self.timings, "walk"):
            walker, plan = self.walk()
        with _timed(self.timings, "pack"):
            contents, digest, size = self.pack(walker, plan)
        with _timed(self.timings, "sbom"):
            sbom = _write_sbom(
                self.root, self.package, self.layout, self.options, self.environ, self.progress
            )
        with _timed(self.timings, "sign"):
            signature_hex = _write_signature(
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
        )

    def install(self) -> None:
        if self.options.install:
            self.progress("install", 0, None)
            outcome = install_dependencies(self.root, self.package, self.environ)
            log.debug("install: %s", outcome.reason)

    def walk(self) -> tuple[Walker, Plan]:
        """List the top of the tree; the pack walks the rest as it writes."""
        self.progress("walk", 0, None)
        rules = IgnoreRules.for_project(self.root, self.layout.excluded_from(self.root))
        walker = Walker(
            os.fspath(self.root), rules, skip_unsafe=self.options.skip_unsafe, on_skip=_warn_skip
        )
        plan = plan_tree(walker)
        self.progress("walk", len(plan.pieces), len(plan.pieces))
        return walker, plan

    def pack(self, walker: Walker, plan: Plan) -> tuple[TreeContents, str, int]:
        self.progress("pack", 0, None)
        compression = self.options.compression
        artifact = self.layout.artifact
        with _partial_file(artifact) as (temp, fd):
            contents, tar_sha256, digest, size = _write_archive(
                walker, plan, fd, temp, artifact, compression, self.epoch, self.progress
            )
            # Replacing an older artifact frees its blocks, which can take tens of ms (more
            # on file systems mounted with online discard): the manifest is written meanwhile,
            # and takes the old one's place only once the artifact has.
            replaced = _BackgroundReplace(temp, artifact)
            try:
                manifest = build_manifest(
                    contents,
                    artifact_name=artifact.name,
                    compression=compression,
                    digest=digest,
                    tar_sha256=tar_sha256,
                    size_bytes=size,
                    source_date_epoch=self.epoch,
                )
                write_manifest(self.layout.manifest, manifest, before_replace=replaced.wait)
            finally:
                replaced.wait()
        return contents, digest, size


def _quiet(phase: str, done: int, total: int | None) -> None:
    return None


def _warn_skip(path: str, reason: str) -> None:
    log.warning("skipped %s: %s", path, reason)


@contextlib.contextmanager
def _timed(timings: dict[str, float], phase: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] = round((time.perf_counter() - started) * 1000, 1)


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


@contextlib.contextmanager
def _partial_file(artifact: Path) -> Iterator[tuple[Path, int]]:
    """A new temporary file beside ``artifact`` and its open descriptor, for the caller to
    write and close; the file is removed on the way out unless renamed.

    Written through the descriptor ``mkstemp`` opened: opening it again with ``O_TRUNC``
    would make ext4 flush the whole file to disk when it is closed.
    """
    try:
        artifact.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(
            prefix=f".{artifact.name}.", suffix=".partial", dir=artifact.parent
        )
    except OSError as exc:
        raise IOFailure(f"cannot write to {artifact.parent}: {exc.strerror or exc}") from exc
    try:
        yield Path(temp), fd
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def _write_archive(
    walker: Walker,
    plan: Plan,
    fd: int,
    temp: Path,
    artifact: Path,
    compression: str,
    epoch: int,
    progress: Progress,
) -> tuple[TreeContents, str, str, int]:
    """Stream the tar through the compressor into ``fd`` (closed here), the open ``temp``
    that becomes ``artifact``."""
    try:
        with os.fdopen(fd, "wb") as handle:
            written = write_archive(
                plan,
                walker,
                handle,
                compression,
                epoch,
                on_progress=lambda done, total: progress("pack", done, total),
            )
        os.chmod(temp, 0o644)
    except OSError as exc:
        raise IOFailure(f"cannot write {artifact}: {exc.strerror or exc}") from exc
    return written


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


def _write_sbom(
    root: Path,
    package: dict[str, Any],
    layout: Layout,
    options: PackOptions,
    environ: Mapping[str, str],
    progress: Progress,
) -> Path | None:
    if not options.sbom:
        _remove_stale(layout.sbom)
        _remove_stale(layout.sbom_key)
        return None
    progress("sbom", 0, None)
    explicit = options.source_date_epoch is not None or "SOURCE_DATE_EPOCH" in environ
    epoch = _source_date_epoch(options, environ) if explicit else None
    key = sbom_inputs_key(root, package, epoch)
    if _reusable_sbom(layout, key):
        return layout.sbom
    from aether.pack.sbom import build_sbom  # cyclonedx is slow to import; only when needed

    _remove_stale(layout.sbom_key)  # never a key beside an SBOM it does not describe
    text = build_sbom(root, package, source_date_epoch=epoch)
    write_text_atomic(layout.sbom, text)
    write_text_atomic(layout.sbom_key, f"{key} {_sha256_text(text)}\n")
    return layout.sbom


def _reusable_sbom(layout: Layout, key: str) -> bool:
    """The SBOM beside the artifact was made from these inputs and is unchanged since."""
    try:
        recorded = layout.sbom_key.read_text(encoding="ascii").split()
        text = layout.sbom.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return recorded == [key, _sha256_text(text)]


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _write_signature(
    layout: Layout, key: str | None, digest: str, progress: Progress
) -> str | None:
    if not key:
        _remove_stale(layout.signature)
        return None
    progress("sign", 0, None)
    from aether.pack.signing import sign_digest

    signature_hex = sign_digest(key, digest)
    write_text_atomic(layout.signature, signature_hex)
    return signature_hex


def _remove_stale(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise IOFailure(f"cannot remove the stale {path}: {exc.strerror or exc}") from exc
