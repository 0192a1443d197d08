"""Typed settings per component, read from an injected environment mapping.

Each component gets one frozen dataclass built by ``from_env(environ)``; nothing else in
Aether reads ``os.environ`` for configuration. Booleans accept ``true|1|yes|on`` and
``false|0|no|off`` (case-insensitive); a value that does not parse is a ConfigError naming
the variable. Every variable here is listed in the README's configuration table (a test
checks it). The CLI's :class:`ClientSettings` lives in :mod:`aether.clientsettings` (the
client's start-up does not build the others) and is re-exported here.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from aether import __version__
from aether.clientsettings import ClientSettings as ClientSettings
from aether.clientsettings import env_bool as env_bool
from aether.errors import ConfigError
from aether.userconfig import data_dir as default_data_dir

# One per host, shared by every worker whatever its data dir (docs/security.md).
DEFAULT_UID_REGISTRY = "/var/lib/aether-sandbox/app-uids.json"


def env_int(environ: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not an integer") from exc
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
    return value


def env_optional_int(environ: Mapping[str, str], name: str) -> int | None:
    """An integer setting that may be unset (empty or absent: None)."""
    if not environ.get(name, "").strip():
        return None
    return env_int(environ, name, 0, minimum=1)


def env_float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a number") from exc


def env_choice(
    environ: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]
) -> str:
    value = environ.get(name, default).strip().lower() or default
    if value not in choices:
        raise ConfigError(f"{name}={value!r} must be one of: {', '.join(choices)}")
    return value


def _path_or_none(environ: Mapping[str, str], name: str) -> Path | None:
    value = environ.get(name, "").strip()
    return Path(value).expanduser() if value else None


def env_list(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in environ.get(name, "").split(",") if item.strip())


@dataclass(frozen=True)
class SecretsSettings:
    """The key ring that seals apps' config values at rest (README, "Config and secrets")."""

    keys: str | None  # AETHER_SECRETS_KEY: base64url 32-byte keys, comma-separated
    key_file: Path  # AETHER_SECRETS_KEY_FILE, default <data dir>/secrets.keys (mode 0600)
    create_key_file: bool  # the default file is generated on first start; a named one is not

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SecretsSettings:
        named = environ.get("AETHER_SECRETS_KEY_FILE") or None
        return cls(
            keys=environ.get("AETHER_SECRETS_KEY") or None,
            key_file=Path(named) if named else default_data_dir(environ) / "secrets.keys",
            create_key_file=named is None,
        )


@dataclass(frozen=True)
class ServerSettings:
    """The control plane's HTTP side."""

    data_dir: Path  # AETHER_DATA_DIR, default ${XDG_DATA_HOME:-~/.local/share}/aether
    database_url: str | None  # DATABASE_URL; None = SQLite in the data dir
    api_tokens: tuple[str, ...]  # AETHER_API_TOKENS: token[:role[:name]],… (bootstrap)
    api_token: str | None  # AETHER_API_TOKEN: one bootstrap admin token
    public_url: str | None  # AETHER_PUBLIC_URL: how clients and pods reach the API
    max_body_bytes: int  # AETHER_MAX_BODY_BYTES: JSON request body limit
    shutdown_grace_secs: float  # AETHER_SHUTDOWN_GRACE_SECS: in-flight requests on stop
    auth_cache_secs: float  # AETHER_AUTH_CACHE_SECS: how long a checked token is trusted
    secrets: SecretsSettings  # the key ring that seals apps' config values
    # AETHER_READ_CACHE_SECS: the longest a cached read is served from memory (0 = off)
    read_cache_secs: float = 60.0
    # AETHER_DASHBOARD_SESSION_SECS: how long a dashboard sign-in lasts (the token's own
    # expiry or revocation ends it sooner)
    dashboard_session_secs: int = 43_200
    # AETHER_DEPLOY_BASELINE_SECS: the deploy time of a server-side build pipeline, drawn
    # as the baseline on the dashboard's latency chart (None: not recorded)
    deploy_baseline_secs: float | None = None
    tls_cert: Path | None = None  # AETHER_TLS_CERT: PEM certificate (chain); HTTPS with tls_key
    tls_key: Path | None = None  # AETHER_TLS_KEY: PEM private key of tls_cert
    # AETHER_TARGET_PLATFORM: where apps run (os-cpu[-libc]); None: this machine
    target_platform: str | None = None
    # AETHER_NODE_MAJOR: the Node.js major apps run on unless a deployment asks for another;
    # None: the `node` on PATH (local runtime) or 20 (kubernetes)
    node_major: int | None = None
    runtime: str = "local"  # AETHER_RUNTIME, for the defaults above
    # AETHER_LOG_RETENTION_DAYS: an app's log lines older than this are deleted (PostgreSQL:
    # whole daily partitions once every line in them is older)
    log_retention_days: float = 7.0
    # AETHER_LOG_RETENTION_BYTES: each app keeps at most this many bytes of log lines
    # (its oldest go first; 0 = no limit)
    log_retention_bytes: int = 256 * 1024 * 1024
    # AETHER_APPS_DOMAIN: apps answer at <app>.<this>; None: localhost for a loopback API,
    # else the API's own host (warned about: apps could set its cookies)
    apps_domain: str | None = None
    # AETHER_TRUSTED_PROXIES: CIDRs of proxies in front of the API whose X-Forwarded-* the
    # app proxy extends; from anyone else those headers are replaced
    trusted_proxies: tuple[str, ...] = ()
    # AETHER_ROUTER_PORT: a port of its own for app traffic (plain HTTP), beside the API's
    # port, which serves apps too; app URLs name it. None: apps answer on the API's port only
    router_port: int | None = None
    # AETHER_APPS_URL: where users reach apps, scheme://<apps domain>[:port] (a load
    # balancer's address); app URLs name its scheme and port. None: the router's own
    apps_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ServerSettings:
        return cls(
            data_dir=default_data_dir(environ),
            database_url=environ.get("DATABASE_URL") or None,
            api_tokens=env_list(environ, "AETHER_API_TOKENS"),
            api_token=environ.get("AETHER_API_TOKEN") or None,
            public_url=environ.get("AETHER_PUBLIC_URL") or None,
            max_body_bytes=env_int(environ, "AETHER_MAX_BODY_BYTES", 1_048_576, minimum=1024),
            shutdown_grace_secs=env_float(environ, "AETHER_SHUTDOWN_GRACE_SECS", 10.0),
            auth_cache_secs=env_float(environ, "AETHER_AUTH_CACHE_SECS", 2.0),
            secrets=SecretsSettings.from_env(environ),
            read_cache_secs=env_float(environ, "AETHER_READ_CACHE_SECS", 60.0),
            dashboard_session_secs=env_int(
                environ, "AETHER_DASHBOARD_SESSION_SECS", 43_200, minimum=60
            ),
            deploy_baseline_secs=_baseline(environ),
            tls_cert=_path_or_none(environ, "AETHER_TLS_CERT"),
            tls_key=_path_or_none(environ, "AETHER_TLS_KEY"),
            target_platform=environ.get("AETHER_TARGET_PLATFORM") or None,
            node_major=env_optional_int(environ, "AETHER_NODE_MAJOR"),
            runtime=env_choice(environ, "AETHER_RUNTIME", "local", ("local", "kubernetes")),
            log_retention_days=env_float(environ, "AETHER_LOG_RETENTION_DAYS", 7.0),
            log_retention_bytes=env_int(environ, "AETHER_LOG_RETENTION_BYTES", 256 * 1024 * 1024),
            apps_domain=_apps_domain(environ),
            trusted_proxies=_networks(environ, "AETHER_TRUSTED_PROXIES"),
            router_port=_port_or_none(environ, "AETHER_ROUTER_PORT"),
            apps_url=_apps_url(environ),
        )

    @property
    def scheme(self) -> str:
        """``https`` when a certificate is configured, else ``http``."""
        return "https" if self.tls_cert else "http"


def _networks(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated CIDRs (or single addresses), checked here so a typo fails at start."""
    found = []
    for entry in env_list(environ, name):
        try:
            found.append(str(ipaddress.ip_network(entry, strict=False)))
        except ValueError:
            raise ConfigError(f"{name}: {entry!r} is not an IP network (CIDR)") from None
    return tuple(found)


def _baseline(environ: Mapping[str, str]) -> float | None:
    if not (environ.get("AETHER_DEPLOY_BASELINE_SECS") or "").strip():
        return None
    value = env_float(environ, "AETHER_DEPLOY_BASELINE_SECS", 0.0)
    if not 0 < value < 86_400:
        raise ConfigError("AETHER_DEPLOY_BASELINE_SECS must be a number of seconds above 0")
    return value


@dataclass(frozen=True)
class BlobSettings:
    """Where artifact bytes live and how presigned URLs are made."""

    mode: str  # AETHER_STORAGE_MODE: local (alias mock) | s3
    data_dir: Path  # local store root is <data_dir>/blobs
    bucket: str  # AETHER_ARTIFACT_BUCKET
    endpoint_url: str | None  # AETHER_S3_ENDPOINT_URL (MinIO, moto, …)
    region: str  # AWS_REGION / AWS_DEFAULT_REGION
    sse: str | None  # AETHER_S3_SSE: AES256 | aws:kms
    sse_kms_key: str | None  # AETHER_S3_SSE_KMS_KEY
    presign_expire_secs: int  # AETHER_PRESIGN_EXPIRE_SECS

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> BlobSettings:
        mode = env_choice(environ, "AETHER_STORAGE_MODE", "local", ("local", "mock", "s3"))
        sse = environ.get("AETHER_S3_SSE") or None
        if sse not in (None, "AES256", "aws:kms"):
            raise ConfigError(f"AETHER_S3_SSE={sse!r} must be AES256 or aws:kms")
        return cls(
            mode="local" if mode == "mock" else mode,
            data_dir=default_data_dir(environ),
            bucket=environ.get("AETHER_ARTIFACT_BUCKET") or "artifacts",
            endpoint_url=environ.get("AETHER_S3_ENDPOINT_URL") or None,
            region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            sse=sse,
            sse_kms_key=environ.get("AETHER_S3_SSE_KMS_KEY") or None,
            presign_expire_secs=env_int(environ, "AETHER_PRESIGN_EXPIRE_SECS", 900, minimum=1),
        )


@dataclass(frozen=True)
class ArtifactPolicy:
    """What the registry checks and keeps (0 disables a limit)."""

    verify_remote_size: bool  # AETHER_VERIFY_REMOTE_SIZE
    verify_remote_digest: bool  # AETHER_VERIFY_REMOTE_DIGEST
    verify_remote_hash: bool | None  # AETHER_VERIFY_REMOTE_HASH; None = store's default
    remote_hash_max_bytes: int  # AETHER_REMOTE_HASH_MAX_BYTES
    require_presign: bool  # AETHER_REQUIRE_PRESIGN
    require_signature: bool  # AETHER_REQUIRE_SIGNATURE
    max_artifact_size_bytes: int  # AETHER_MAX_ARTIFACT_SIZE_BYTES
    max_artifacts_per_app: int  # AETHER_MAX_ARTIFACTS_PER_APP
    max_total_bytes_per_app: int  # AETHER_MAX_TOTAL_BYTES_PER_APP
    retain_latest_per_app: int  # AETHER_RETAIN_LATEST_PER_APP
    multipart_threshold_bytes: int  # AETHER_MULTIPART_THRESHOLD_BYTES
    multipart_part_size_bytes: int  # AETHER_MULTIPART_PART_SIZE_BYTES
    max_concurrent_uploads: int  # AETHER_MAX_CONCURRENT_UPLOADS (legacy POST /artifacts)
    pending_ttl_secs: int  # AETHER_PENDING_TTL_SECS
    pending_gc_interval_secs: int  # AETHER_PENDING_GC_INTERVAL_SECS
    require_sbom: bool = False  # AETHER_REQUIRE_SBOM: deploy only artifacts with an SBOM
    # AETHER_SBOM_DENY_PACKAGES: "name" or "name@version" entries an SBOM may not list
    sbom_deny_packages: tuple[str, ...] = ()
    # AETHER_SBOM_DENY_LICENSES: licence ids (SPDX) no component of an SBOM may carry
    sbom_deny_licenses: tuple[str, ...] = ()

    @property
    def checks_sbom_contents(self) -> bool:
        return bool(self.sbom_deny_packages or self.sbom_deny_licenses)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ArtifactPolicy:
        hash_raw = environ.get("AETHER_VERIFY_REMOTE_HASH")
        return cls(
            verify_remote_size=env_bool(environ, "AETHER_VERIFY_REMOTE_SIZE", True),
            verify_remote_digest=env_bool(environ, "AETHER_VERIFY_REMOTE_DIGEST", True),
            verify_remote_hash=(
                None if hash_raw is None else env_bool(environ, "AETHER_VERIFY_REMOTE_HASH", True)
            ),
            remote_hash_max_bytes=env_int(environ, "AETHER_REMOTE_HASH_MAX_BYTES", 8_000_000),
            require_presign=env_bool(environ, "AETHER_REQUIRE_PRESIGN", False),
            require_signature=env_bool(environ, "AETHER_REQUIRE_SIGNATURE", False),
            max_artifact_size_bytes=env_int(environ, "AETHER_MAX_ARTIFACT_SIZE_BYTES", 0),
            max_artifacts_per_app=env_int(environ, "AETHER_MAX_ARTIFACTS_PER_APP", 0),
            max_total_bytes_per_app=env_int(environ, "AETHER_MAX_TOTAL_BYTES_PER_APP", 0),
            retain_latest_per_app=env_int(environ, "AETHER_RETAIN_LATEST_PER_APP", 0),
            multipart_threshold_bytes=env_int(
                environ, "AETHER_MULTIPART_THRESHOLD_BYTES", 64 * 1024 * 1024, minimum=1
            ),
            multipart_part_size_bytes=env_int(
                environ, "AETHER_MULTIPART_PART_SIZE_BYTES", 8 * 1024 * 1024, minimum=1
            ),
            max_concurrent_uploads=env_int(environ, "AETHER_MAX_CONCURRENT_UPLOADS", 32, minimum=1),
            pending_ttl_secs=env_int(environ, "AETHER_PENDING_TTL_SECS", 86_400),
            pending_gc_interval_secs=env_int(environ, "AETHER_PENDING_GC_INTERVAL_SECS", 600),
            require_sbom=env_bool(environ, "AETHER_REQUIRE_SBOM", False),
            sbom_deny_packages=env_list(environ, "AETHER_SBOM_DENY_PACKAGES"),
            sbom_deny_licenses=env_list(environ, "AETHER_SBOM_DENY_LICENSES"),
        )


@dataclass(frozen=True)
class ExpansionLimits:
    """How far an artifact may expand when extracted (the worker and ``aether fetch``).

    An archive is refused, before its expansion reaches the disk, when its uncompressed tar
    would exceed ``max_bytes`` or ``max_ratio`` times its compressed size; the ratio applies
    only past ``RATIO_FLOOR_BYTES``, so small archives of empty files are never refused."""

    RATIO_FLOOR_BYTES = 32 * 2**20

    max_bytes: int = 4 * 2**30  # AETHER_MAX_EXPANDED_BYTES
    max_ratio: int = 200  # AETHER_MAX_EXPANSION_RATIO (0 = no ratio limit)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ExpansionLimits:
        return cls(
            max_bytes=env_int(environ, "AETHER_MAX_EXPANDED_BYTES", cls.max_bytes, minimum=1),
            max_ratio=env_int(environ, "AETHER_MAX_EXPANSION_RATIO", cls.max_ratio),
        )

    def as_env(self) -> dict[str, str]:
        """The variables that give another process (an init container) these limits."""
        return {
            "AETHER_MAX_EXPANDED_BYTES": str(self.max_bytes),
            "AETHER_MAX_EXPANSION_RATIO": str(self.max_ratio),
        }


@dataclass(frozen=True)
class SandboxSettings:
    """How the local runtime confines and limits each app's processes (docs/security.md)."""

    mode: str  # AETHER_SANDBOX: auto | bubblewrap | none
    allow_shared: bool  # AETHER_SANDBOX_ALLOW_SHARED: apps of several owners without isolation
    uid_base: int  # AETHER_SANDBOX_UID_BASE: first uid given to an app (worker runs as root)
    uid_registry: Path  # AETHER_SANDBOX_UID_REGISTRY: the host-wide record of app uids
    memory_mb: int  # AETHER_APP_MEMORY_MB: data memory of each app process (0 = no limit)
    max_processes: int  # AETHER_APP_MAX_PROCESSES: processes (threads) of the app's user
    max_open_files: int  # AETHER_APP_MAX_OPEN_FILES: open files of each app process
    nice: int  # AETHER_APP_NICE: CPU priority of apps below the worker's (0-19)
    log_max_bytes: int  # AETHER_APP_LOG_MAX_BYTES: log bytes kept per app (rotated)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SandboxSettings:
        nice = env_int(environ, "AETHER_APP_NICE", 10)
        if nice > 19:
            raise ConfigError(f"AETHER_APP_NICE={nice} must be between 0 and 19")
        return cls(
            mode=env_choice(environ, "AETHER_SANDBOX", "auto", ("auto", "bubblewrap", "none")),
            allow_shared=env_bool(environ, "AETHER_SANDBOX_ALLOW_SHARED", False),
            uid_base=env_int(environ, "AETHER_SANDBOX_UID_BASE", 300_000, minimum=1000),
            uid_registry=_uid_registry(environ),
            memory_mb=env_int(environ, "AETHER_APP_MEMORY_MB", 1024),
            max_processes=env_int(environ, "AETHER_APP_MAX_PROCESSES", 512),
            max_open_files=env_int(environ, "AETHER_APP_MAX_OPEN_FILES", 4096, minimum=64),
            nice=nice,
            log_max_bytes=env_int(
                environ, "AETHER_APP_LOG_MAX_BYTES", 64 * 1024 * 1024, minimum=64 * 1024
            ),
        )


def _absolute_path(environ: Mapping[str, str], name: str) -> Path | None:
    raw = environ.get(name, "").strip()
    if raw and not raw.startswith("/"):
        raise ConfigError(f"{name}={raw!r} must be an absolute path")
    return Path(raw) if raw else None


def _uid_registry(environ: Mapping[str, str]) -> Path:
    named = _absolute_path(environ, "AETHER_SANDBOX_UID_REGISTRY")
    return named or Path(DEFAULT_UID_REGISTRY)


@dataclass(frozen=True)
class WorkerSettings:
    """The reconciliation loop."""

    runtime: str  # AETHER_RUNTIME: local | kubernetes
    data_dir: Path  # local runtime: releases and logs under <data_dir>/apps
    rollout_timeout_secs: float  # AETHER_ROLLOUT_TIMEOUT_SECS
    poll_interval_secs: float  # AETHER_WORKER_POLL_SECS: SQLite poll / PostgreSQL safety net
    lease_secs: float  # AETHER_WORKER_LEASE_SECS: how long a worker owns an app without renewing
    require_signature: bool  # AETHER_REQUIRE_SIGNATURE
    sandbox: SandboxSettings  # the local runtime's isolation and per-app limits
    secrets: SecretsSettings  # the key ring that opens apps' config values
    expansion: ExpansionLimits = ExpansionLimits()  # extraction limits (decompression bombs)
    # AETHER_NODE_BINARIES: JSON {"22": "/opt/node-22/bin/node"}: the node per Node.js major
    node_binaries: tuple[tuple[int, str], ...] = ()
    heartbeat_secs: float = 2.0  # AETHER_WORKER_HEARTBEAT_SECS: how often a worker says it lives
    # AETHER_WORKER_DEAD_SECS: a worker silent this long is gone; its apps are taken over
    dead_secs: float = 6.0
    # AETHER_WORKER_ADVERTISE_ADDR: the address other hosts reach this worker's apps on
    # (local runtime); None: the address of this host's default route
    advertise_addr: str | None = None
    # AETHER_LOG_SHIP_MAX_LAG_BYTES: unshipped output beyond this is skipped (and counted)
    log_ship_max_lag_bytes: int = 8 * 1024 * 1024
    # AETHER_LAYER_CACHE_DIR: the host's extracted dependency layers (local runtime), shared
    # by every worker naming it; None: <data_dir>/layers
    layer_cache_dir: Path | None = None
    # AETHER_APP_STANDBY: after a release passed its health gate, keep one Node.js process
    # started and waiting in the app's sandbox for its next release (local runtime)
    standby: bool = True
    # AETHER_APP_STANDBY_RESOLVE: a standby resolves what its dependency layer's modules
    # require while it waits, so that the next release loads them sooner (no module runs)
    standby_resolve: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> WorkerSettings:
        return cls(
            runtime=env_choice(environ, "AETHER_RUNTIME", "local", ("local", "kubernetes")),
            data_dir=default_data_dir(environ),
            rollout_timeout_secs=env_float(environ, "AETHER_ROLLOUT_TIMEOUT_SECS", 120.0),
            poll_interval_secs=env_float(environ, "AETHER_WORKER_POLL_SECS", 0.5),
            lease_secs=env_float(environ, "AETHER_WORKER_LEASE_SECS", 30.0),
            require_signature=env_bool(environ, "AETHER_REQUIRE_SIGNATURE", False),
            sandbox=SandboxSettings.from_env(environ),
            secrets=SecretsSettings.from_env(environ),
            expansion=ExpansionLimits.from_env(environ),
            node_binaries=_per_major(environ, "AETHER_NODE_BINARIES"),
            heartbeat_secs=env_float(environ, "AETHER_WORKER_HEARTBEAT_SECS", 2.0),
            dead_secs=env_float(environ, "AETHER_WORKER_DEAD_SECS", 6.0),
            advertise_addr=environ.get("AETHER_WORKER_ADVERTISE_ADDR", "").strip() or None,
            log_ship_max_lag_bytes=env_int(
                environ, "AETHER_LOG_SHIP_MAX_LAG_BYTES", 8 * 1024 * 1024, minimum=64 * 1024
            ),
            layer_cache_dir=_absolute_path(environ, "AETHER_LAYER_CACHE_DIR"),
            standby=env_bool(environ, "AETHER_APP_STANDBY", True),
            standby_resolve=env_bool(environ, "AETHER_APP_STANDBY_RESOLVE", True),
        )


def _per_major(environ: Mapping[str, str], name: str) -> tuple[tuple[int, str], ...]:
    """A JSON object from Node.js majors to strings: {"20": "…", "22": "…"}."""
    value = env_json(environ, name, dict, {})
    assert isinstance(value, dict)
    found = []
    for key, item in value.items():
        if not str(key).isdigit() or not isinstance(item, str) or not item:
            raise ConfigError(f'{name} must map Node.js majors to strings: {{"22": "…"}}')
        found.append((int(key), item))
    return tuple(sorted(found))


_QUANTITY_RE = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")


def env_quantity(environ: Mapping[str, str], name: str, default: str) -> str:
    """A Kubernetes resource quantity (``250m``, ``512Mi``); empty means "not set"."""
    value = environ.get(name, default).strip()
    if value and not _QUANTITY_RE.match(value):
        raise ConfigError(f"{name}={value!r} is not a Kubernetes quantity (e.g. 250m, 512Mi)")
    return value


def env_json(environ: Mapping[str, str], name: str, expected: type, default: object) -> object:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} is not valid JSON: {exc}") from exc
    if not isinstance(value, expected):
        raise ConfigError(f"{name} must be a JSON {expected.__name__}")
    return value


def _port_or_none(environ: Mapping[str, str], name: str) -> int | None:
    if not environ.get(name, "").strip():
        return None
    port = env_int(environ, name, 0, minimum=0)
    if port > 65535:
        raise ConfigError(f"{name}={port} is not a port number (0-65535; 0 picks a free one)")
    return port


def _apps_domain(environ: Mapping[str, str]) -> str | None:
    """AETHER_APPS_DOMAIN as the server reads it: lower case, no dots at either end; else
    the host of AETHER_APPS_URL, which must agree with it when both are set."""
    domain = (environ.get("AETHER_APPS_DOMAIN") or "").strip().lower().strip(".")
    url = _apps_url(environ)
    host = urlsplit(url).hostname if url else None
    if domain and host and host != domain:
        raise ConfigError(
            f"AETHER_APPS_URL names {host} but AETHER_APPS_DOMAIN is {domain}: apps answer"
            " at <app>.<apps domain>, so set one of them, or both to the same domain"
        )
    return domain or host or None


def _apps_url(environ: Mapping[str, str]) -> str | None:
    """AETHER_APPS_URL as ``scheme://<apps domain>[:port]`` (no path), checked at start."""
    value = (environ.get("AETHER_APPS_URL") or "").strip().rstrip("/")
    if not value:
        return None
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.username
    ):
        raise ConfigError(
            f"AETHER_APPS_URL={value!r} is not scheme://<apps domain>[:port]"
            " (e.g. https://apps.example.net)"
        )
    default = {"http": 80, "https": 443}[parts.scheme]
    suffix = f":{port}" if port and port != default else ""
    return f"{parts.scheme}://{parts.hostname.strip('.')}{suffix}"


def _node_selector(environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    selector = env_json(environ, "AETHER_KUBE_NODE_SELECTOR", dict, {})
    assert isinstance(selector, dict)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in selector.items()):
        raise ConfigError('AETHER_KUBE_NODE_SELECTOR must map strings to strings: {"disk": "ssd"}')
    return tuple(sorted(selector.items()))


def _tolerations(environ: Mapping[str, str]) -> tuple[Mapping[str, object], ...]:
    tolerations = env_json(environ, "AETHER_KUBE_TOLERATIONS", list, [])
    assert isinstance(tolerations, list)
    if not all(isinstance(item, dict) for item in tolerations):
        raise ConfigError('AETHER_KUBE_TOLERATIONS must be a JSON list of objects: [{"key": …}]')
    return tuple(tolerations)


@dataclass(frozen=True)
class KubeSettings:
    """The Kubernetes runtime: where and how apps run on a cluster."""

    namespace: str  # AETHER_DEFAULT_NAMESPACE: namespace of the apps (must exist)
    kubeconfig: str | None  # KUBECONFIG; unset: in-cluster service account, else ~/.kube/config
    init_image: str  # AETHER_INIT_IMAGE: the aether image running `aether fetch`
    # AETHER_NODE_IMAGE: the Node.js image running the app; {major} is the release's major
    node_image: str
    cpu_request: str  # AETHER_KUBE_CPU_REQUEST
    memory_request: str  # AETHER_KUBE_MEMORY_REQUEST
    cpu_limit: str  # AETHER_KUBE_CPU_LIMIT ("" = no limit)
    memory_limit: str  # AETHER_KUBE_MEMORY_LIMIT ("" = no limit)
    service_account: str | None  # AETHER_KUBE_SERVICE_ACCOUNT for app pods
    image_pull_secrets: tuple[str, ...]  # AETHER_KUBE_IMAGE_PULL_SECRETS: names, comma-separated
    node_selector: tuple[tuple[str, str], ...]  # AETHER_KUBE_NODE_SELECTOR: JSON object
    tolerations: tuple[Mapping[str, object], ...]  # AETHER_KUBE_TOLERATIONS: JSON list
    rollout_strategy: str  # AETHER_KUBE_ROLLOUT_STRATEGY: recreate | rolling
    progress_deadline_secs: int  # AETHER_KUBE_PROGRESS_DEADLINE_SECS: Deployment's deadline
    app_port: int  # AETHER_KUBE_APP_PORT: the PORT apps listen on in their pod
    poll_interval_secs: float  # AETHER_KUBE_POLL_SECS: how often a rollout is checked
    request_timeout_secs: float  # AETHER_KUBE_TIMEOUT_SECS: one API request
    service_host: str | None  # KUBERNETES_SERVICE_HOST: set by Kubernetes inside pods
    service_port: str  # KUBERNETES_SERVICE_PORT
    expansion: ExpansionLimits = ExpansionLimits()  # handed to the fetch init container
    # AETHER_NODE_IMAGES: JSON {"22": "registry/node:22"}: the image per Node.js major
    node_images: tuple[tuple[int, str], ...] = ()
    node_major: int = 20  # AETHER_NODE_MAJOR: for releases that name no Node.js major
    # AETHER_APPS_DOMAIN: apps answer at <app>.<this>; set, each app also gets an Ingress
    # for that host, so its traffic goes to the cluster's ingress controller, not the API
    apps_domain: str | None = None
    ingress_class: str | None = None  # AETHER_KUBE_INGRESS_CLASS: spec.ingressClassName
    # AETHER_KUBE_INGRESS_TLS_SECRET: a TLS Secret (e.g. a wildcard certificate) in the apps
    # namespace that the Ingress serves its host with
    ingress_tls_secret: str | None = None
    # AETHER_KUBE_INGRESS_CLUSTER_ISSUER: a cert-manager ClusterIssuer that issues each app's
    # certificate (into the Secret <app>-tls); the annotation cert-manager.io/cluster-issuer
    ingress_cluster_issuer: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> KubeSettings:
        return cls(
            namespace=environ.get("AETHER_DEFAULT_NAMESPACE") or "aether",
            kubeconfig=environ.get("KUBECONFIG") or None,
            init_image=environ.get("AETHER_INIT_IMAGE") or f"aether:{__version__}",
            node_image=environ.get("AETHER_NODE_IMAGE") or "aether-nodejs:{major}-slim",
            cpu_request=env_quantity(environ, "AETHER_KUBE_CPU_REQUEST", "100m"),
            memory_request=env_quantity(environ, "AETHER_KUBE_MEMORY_REQUEST", "128Mi"),
            cpu_limit=env_quantity(environ, "AETHER_KUBE_CPU_LIMIT", ""),
            memory_limit=env_quantity(environ, "AETHER_KUBE_MEMORY_LIMIT", "512Mi"),
            service_account=environ.get("AETHER_KUBE_SERVICE_ACCOUNT") or None,
            image_pull_secrets=env_list(environ, "AETHER_KUBE_IMAGE_PULL_SECRETS"),
            node_selector=_node_selector(environ),
            tolerations=_tolerations(environ),
            rollout_strategy=env_choice(
                environ, "AETHER_KUBE_ROLLOUT_STRATEGY", "recreate", ("recreate", "rolling")
            ),
            progress_deadline_secs=env_int(
                environ, "AETHER_KUBE_PROGRESS_DEADLINE_SECS", 120, minimum=10
            ),
            app_port=env_int(environ, "AETHER_KUBE_APP_PORT", 8080, minimum=1),
            poll_interval_secs=env_float(environ, "AETHER_KUBE_POLL_SECS", 1.0),
            request_timeout_secs=env_float(environ, "AETHER_KUBE_TIMEOUT_SECS", 10.0),
            service_host=environ.get("KUBERNETES_SERVICE_HOST") or None,
            service_port=environ.get("KUBERNETES_SERVICE_PORT") or "443",
            expansion=ExpansionLimits.from_env(environ),
            node_images=_per_major(environ, "AETHER_NODE_IMAGES"),
            node_major=env_optional_int(environ, "AETHER_NODE_MAJOR") or 20,
            apps_domain=_apps_domain(environ),
            ingress_class=environ.get("AETHER_KUBE_INGRESS_CLASS") or None,
            ingress_tls_secret=environ.get("AETHER_KUBE_INGRESS_TLS_SECRET") or None,
            ingress_cluster_issuer=environ.get("AETHER_KUBE_INGRESS_CLUSTER_ISSUER") or None,
        )
