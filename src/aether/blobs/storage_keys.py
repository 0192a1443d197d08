"""Content-addressed object keys: where an artifact's bytes live in either blob store."""

from __future__ import annotations

from aether.errors import BadRequest

# "none": an object stored as it is, such as a layered artifact's SBOM
_SUFFIXES = {"zstd": "app.tar.zst", "gzip": "app.tar.gz", "none": "object"}
COMPRESSIONS = tuple(_SUFFIXES)


def storage_key(app: str, digest: str, compression: str) -> str:
    """``artifacts/<app>/<digest>/app.tar.zst`` (zstd), ``…/app.tar.gz`` (gzip) or
    ``…/object`` (none)."""
    try:
        suffix = _SUFFIXES[compression]
    except KeyError:
        raise BadRequest(
            f"unknown compression {compression!r}; use one of: {', '.join(COMPRESSIONS)}"
        ) from None
    return f"artifacts/{app}/{digest}/{suffix}"


def upload_key(app: str, digest: str, compression: str, unique: str) -> str:
    """``artifacts/<app>/<digest>/uploads/<unique>/app.tar.zst``: an upload that must not
    land on the digest's own key, because stored bytes live there already."""
    base = storage_key(app, digest, compression)
    folder, _, name = base.rpartition("/")
    return f"{folder}/uploads/{unique}/{name}"


def manifest_key(app: str, digest: str) -> str:
    """``artifacts/<app>/<digest>/artifact.json``: a layered artifact's manifest."""
    return f"artifacts/{app}/{digest}/{MANIFEST_NAME}"


MANIFEST_NAME = "artifact.json"


def check_key(key: str) -> str:
    """Reject keys that could escape a folder: absolute, empty segments, dots, backslashes."""
    parts = key.split("/")
    if not key or "\\" in key or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise BadRequest(f"invalid object key {key!r}")
    return key
