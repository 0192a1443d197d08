"""HMAC-SHA256 signatures for the local store's presigned URLs.

The control plane serves the local store's uploads and downloads itself, so it signs its own
URLs: method, key, expiry and the upload's constraints (size, sha256, multipart upload id and
part number) under a server secret generated once and kept in the data dir. A URL that is
expired or whose query was changed fails verification.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path

from aether.errors import ConfigError, Forbidden

# The query parameters a signature covers, in signing order (the signature itself is "sig").
SIGNED_FIELDS = ("expires", "size", "sha256", "upload_id", "part_number", "max_size")


def load_or_create_secret(path: Path) -> bytes:
    """The server secret at ``path``; created (mode 0600) on first use, never rewritten."""
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    except ValueError as exc:
        raise ConfigError(f"{path} is not a hex secret; delete it to generate a new one") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process created it between our read and our create: use theirs.
        return load_or_create_secret(path)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secret.hex())
    return secret


class UrlSigner:
    """Signs and verifies the query of a presigned local URL."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, method: str, key: str, fields: Mapping[str, str]) -> str:
        message = "\n".join([method.upper(), key, *(fields.get(f, "") for f in SIGNED_FIELDS)])
        data = message.encode("utf-8", "surrogatepass")  # a hostile query may hold anything
        return hmac.new(self._secret, data, hashlib.sha256).hexdigest()

    def sign(self, method: str, key: str, *, expires_secs: int, **fields: str | int | None) -> dict:
        """The query parameters (strings) of a URL valid for ``expires_secs`` from now."""
        query = {name: str(value) for name, value in fields.items() if value is not None}
        unknown = set(query) - set(SIGNED_FIELDS)
        if unknown:
            raise ValueError(f"cannot sign unknown fields {sorted(unknown)}")
        query["expires"] = str(int(time.time()) + expires_secs)
        query["sig"] = self._mac(method, key, query)
        return query

    def verify(self, method: str, key: str, query: Mapping[str, str]) -> dict[str, str]:
        """The signed fields of a valid query; Forbidden when tampered with or expired."""
        fields = {name: query[name] for name in SIGNED_FIELDS if name in query}
        expected = self._mac(method, key, fields)
        # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError).
        given = query.get("sig", "").encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(expected.encode("ascii"), given):
            raise Forbidden("the presigned URL's signature does not match; request a new URL")
        try:
            expires = int(fields.get("expires", ""))
        except ValueError:
            raise Forbidden("the presigned URL has no valid expiry; request a new URL") from None
        if expires < time.time():
            raise Forbidden("the presigned URL has expired; request a new URL")
        return fields
