"""Config values sealed at rest: AES-256-GCM under the server's secrets key ring.

Every value an app's configuration holds (config vars, a release's one-off ``--env``) is
stored as a *sealed value*: ``{"fp": fingerprint, "box": "v1.<key id>.<nonce+ciphertext>"}``.
The box names the key that sealed it, so a ring of several keys opens values sealed under any
of them while a rotation re-seals them under the new one. The associated data binds each box
to its app and variable name: a box copied to another app or name does not open.

The fingerprint is a keyed hash (HMAC-SHA256 of app, name and value under a key derived from
the sealing key), cut to 8 hex digits: it tells whether a value changed without letting
anyone who sees it, or a copy of the database, test guesses of a short value.

Where the keys come from (:class:`KeySource`): ``AETHER_SECRETS_KEY`` (base64url keys,
comma-separated) or the key file ``AETHER_SECRETS_KEY_FILE`` (one key per line, mode 0600;
the embedded default generates one in the data directory). Which key seals new values is
not the ring's business but the database's (``aether.store.secret_keys``), so that several
servers agree on it; a ring that meets a key id it does not hold reads its source again,
which is how a server learns the key a rotation added to a shared file.

``cryptography`` is imported here and in :mod:`aether.pack.signing` only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aether.errors import ConfigError, InternalError, IOFailure, ServiceUnavailable

KEY_BYTES = 32
NONCE_BYTES = 12
BOX_VERSION = "v1"
FINGERPRINT_HEX = 8
# A ring that misses a key id reads its source again at most this often.
RELOAD_MIN_SECS = 1.0


class SealedValue(TypedDict):
    """One stored value: its fingerprint and its box."""

    fp: str
    box: str


SealedEnv = dict[str, SealedValue]


def key_id(key: bytes) -> str:
    """A key's public name (12 hex digits of a hash; reveals nothing about the key)."""
    return hashlib.sha256(b"aether secrets key id\0" + key).hexdigest()[:12]


def new_key() -> str:
    """A fresh key, base64url as the settings and key files hold it."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode().rstrip("=")


def parse_key(text: str, *, where: str) -> bytes:
    padded = text.strip() + "=" * (-len(text.strip()) % 4)
    try:
        key = base64.urlsafe_b64decode(padded.encode("ascii"))
    except (ValueError, binascii.Error, UnicodeEncodeError) as exc:
        raise ConfigError(f"{where}: a secrets key must be base64url text") from exc
    if len(key) != KEY_BYTES:
        raise ConfigError(
            f"{where}: a secrets key must be {KEY_BYTES} bytes (got {len(key)}); "
            "`aether admin new-key` prints one"
        )
    return key


def box_key_id(box: str) -> str:
    """The id of the key that sealed ``box``."""
    version, _, rest = box.partition(".")
    kid, _, _ = rest.partition(".")
    if version != BOX_VERSION or not kid:
        raise InternalError("a stored config value is not a sealed box this version reads")
    return kid


def _context(app_id: str, name: str) -> bytes:
    return f"aether config\0{app_id}\0{name}".encode()


class KeySource:
    """Where a ring's keys come from."""

    description: str = "keys"

    def can_write(self) -> bool:
        return False

    def changed(self) -> bool:
        """Whether the keys may differ from the last ``read`` (cheap to ask)."""
        return False

    def read(self) -> list[bytes]:
        raise NotImplementedError

    def add(self, key: str) -> None:
        raise ConfigError(f"{self.description} cannot be changed by aether")

    def remove(self, key_ids: Iterable[str]) -> None:
        raise ConfigError(f"{self.description} cannot be changed by aether")


class EnvKeys(KeySource):
    """``AETHER_SECRETS_KEY``: fixed for the life of the process."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.description = "AETHER_SECRETS_KEY"

    def read(self) -> list[bytes]:
        parts = [part for part in self.value.split(",") if part.strip()]
        return [parse_key(part, where=self.description) for part in parts]


class KeyFile(KeySource):
    """A key file: one base64url key per line, ``#`` comments; created (0600) when missing
    if ``create`` is set. Rotation adds and removes lines through an atomic rename."""

    def __init__(self, path: Path, *, create: bool) -> None:
        self.path = path
        self.create = create
        self.description = f"the key file {path}"
        self._seen: tuple[int, int, int] | None = None  # (inode, size, mtime) at the last read

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return (info.st_ino, info.st_size, info.st_mtime_ns)

    def changed(self) -> bool:
        return self._stamp() != self._seen

    def can_write(self) -> bool:
        return os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)

    def read(self) -> list[bytes]:
        if not self.path.exists() and self.create:
            self._write([new_key()], exclusive=True)
        self._seen = self._stamp()
        try:
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError as exc:
            raise ConfigError(
                f"{self.description} does not exist; create it with `aether admin new-key` "
                "or set AETHER_SECRETS_KEY"
            ) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {self.description}: {exc}") from exc
        return [parse_key(line, where=str(self.path)) for line in _key_lines(text)]

    def add(self, key: str) -> None:
        self._write([*_key_lines(self._text()), key], exclusive=False)

    def remove(self, key_ids: Iterable[str]) -> None:
        doomed = set(key_ids)
        kept = [
            line
            for line in _key_lines(self._text())
            if key_id(parse_key(line, where=str(self.path))) not in doomed
        ]
        self._write(kept, exclusive=False)

    def _text(self) -> str:
        try:
            return self.path.read_text(encoding="ascii")
        except OSError as exc:
            raise IOFailure(f"cannot read {self.description}: {exc}") from exc

    def _write(self, keys: list[str], *, exclusive: bool) -> None:
        """Write (0600, never readable by anyone else for a moment) and rename into place."""
        body = "# aether secrets keys: one per line; see `aether admin rotate-key`\n"
        body += "".join(f"{key}\n" for key in keys)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            if exclusive:
                os.link(tmp, self.path)  # fails if another process created it meanwhile
                os.unlink(tmp)
            else:
                os.replace(tmp, self.path)
        except FileExistsError:
            os.unlink(tmp)
        except OSError as exc:
            raise IOFailure(f"cannot write {self.description}: {exc}") from exc


def _key_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


@dataclass(frozen=True)
class _Key:
    secret: bytes
    aead: AESGCM
    fingerprint_key: bytes


class KeyRing:
    """The keys this process holds, by id; thread-safe (the SQLite adapter's thread and the
    event loop may both use it)."""

    def __init__(self, source: KeySource) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._keys: dict[str, _Key] = {}
        self._first = ""
        self._loaded_at = float("-inf")
        self.reload()

    @classmethod
    def of(cls, *keys: str) -> KeyRing:
        """A ring of fixed keys (tests, tools)."""
        return cls(EnvKeys(",".join(keys)))

    def reload(self) -> None:
        keys = self.source.read()
        if not keys:
            raise ConfigError(f"{self.source.description} holds no key")
        with self._lock:
            self._keys = {key_id(k): _make_key(k) for k in keys}
            self._first = key_id(keys[0])
            self._loaded_at = time.monotonic()

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    @property
    def first_key_id(self) -> str:
        """The source's first key: the one registered as primary on a fresh database."""
        return self._first

    def has(self, kid: str) -> bool:
        """Whether the ring holds ``kid``, reading the source again if not — at once when it
        changed (a rotation added the key), else at most every RELOAD_MIN_SECS."""
        if kid in self._keys:
            return True
        if self.source.changed() or time.monotonic() - self._loaded_at >= RELOAD_MIN_SECS:
            self.reload()
        return kid in self._keys

    def _key(self, kid: str) -> _Key:
        if not self.has(kid):
            raise ServiceUnavailable(
                f"this server does not hold secrets key {kid}; give it the same "
                "AETHER_SECRETS_KEY / AETHER_SECRETS_KEY_FILE as the other servers"
            )
        return self._keys[kid]

    def seal(self, value: str, *, kid: str, app_id: str, name: str) -> SealedValue:
        key = self._key(kid)
        nonce = secrets.token_bytes(NONCE_BYTES)
        data = key.aead.encrypt(nonce, value.encode("utf-8"), _context(app_id, name))
        box = base64.urlsafe_b64encode(nonce + data).decode().rstrip("=")
        return {"fp": _fingerprint(key, app_id, name, value), "box": f"{BOX_VERSION}.{kid}.{box}"}

    def unseal(self, sealed: SealedValue, *, app_id: str, name: str) -> str:
        kid = box_key_id(sealed["box"])
        key = self._key(kid)
        raw = sealed["box"].rsplit(".", 1)[-1]
        try:
            blob = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
            plain = key.aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _context(app_id, name))
        except (InvalidTag, ValueError, binascii.Error) as exc:
            # Never the value or the box in the message: only where it belongs.
            raise InternalError(
                f"the stored value of {name} does not open under key {kid} (damaged or moved)"
            ) from exc
        return plain.decode("utf-8")

    def unseal_env(self, sealed: Mapping[str, SealedValue], *, app_id: str) -> dict[str, str]:
        return {name: self.unseal(box, app_id=app_id, name=name) for name, box in sealed.items()}

    def reseal(self, sealed: SealedValue, *, kid: str, app_id: str, name: str) -> SealedValue:
        """The value under ``kid``, keeping its fingerprint (a rotation changes no value)."""
        if box_key_id(sealed["box"]) == kid:
            return sealed
        fresh = self.seal(
            self.unseal(sealed, app_id=app_id, name=name), kid=kid, app_id=app_id, name=name
        )
        return {"fp": sealed["fp"], "box": fresh["box"]}


def _make_key(secret: bytes) -> _Key:
    derived = hmac.new(secret, b"aether config fingerprint", hashlib.sha256).digest()
    return _Key(secret, AESGCM(secret), derived)


def _fingerprint(key: _Key, app_id: str, name: str, value: str) -> str:
    message = _context(app_id, name) + b"\0" + value.encode("utf-8")
    return hmac.new(key.fingerprint_key, message, hashlib.sha256).hexdigest()[:FINGERPRINT_HEX]


def key_source(env_keys: str | None, key_file: Path, *, create: bool) -> KeySource:
    """``AETHER_SECRETS_KEY`` when set, else the key file (created when ``create``)."""
    if env_keys:
        return EnvKeys(env_keys)
    return KeyFile(key_file, create=create)
