"""The one exception root and its families.

Every error Aether raises on purpose is an :class:`AetherError`. Each class carries the exit
code the CLI returns for it, the HTTP status the API answers with, and the stable ``code``
string of the JSON error envelope. Third-party exceptions are wrapped where they enter
(``raise SomeError(...) from exc``), so the CLI and the API each have one place that turns
errors into output.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CONFIG = 10
EXIT_INTERNAL = 20
EXIT_IO = 30
EXIT_NETWORK = 40


class AetherError(Exception):
    """Root of every deliberate Aether error; unclassified failures (exit 20, HTTP 500)."""

    exit_code = EXIT_INTERNAL
    http_status = 500
    code = "internal"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def envelope(self) -> dict[str, str]:
        """The API/CLI error body: ``{"code", "message"}``."""
        return {"code": self.code, "message": self.message}


# --- CLI-side families -------------------------------------------------------------------


class UsageError(AetherError):
    """Bad arguments or an input the command cannot work with (exit 2)."""

    exit_code = EXIT_USAGE
    http_status = 400
    code = "usage"


class ConfigError(AetherError):
    """A broken config or session file, missing credentials or settings (exit 10)."""

    exit_code = EXIT_CONFIG
    http_status = 500
    code = "config"


class InternalError(AetherError):
    """Something failed that is not the user's input, disk or network (exit 20)."""

    code = "internal"


class IOFailure(AetherError):
    """Reading or writing a local file or folder failed (exit 30)."""

    exit_code = EXIT_IO
    code = "io"


class NetworkError(AetherError):
    """The API or object storage could not be reached: refused, DNS, timeout, TLS (exit 40)."""

    exit_code = EXIT_NETWORK
    http_status = 503
    code = "network"


class IntegrityError(AetherError):
    """An artifact's bytes, manifest or signature do not match what was expected (exit 20)."""

    code = "integrity"


class RemoteError(AetherError):
    """The API answered with an error envelope; ``code`` is the server's code (exit 20).

    401 maps to exit 10 because the remedy is configuration: ``aether login``.
    """

    def __init__(self, message: str, *, code: str, status: int) -> None:
        super().__init__(message, code=code)
        self.http_status = status
        if status == 401:
            self.exit_code = EXIT_CONFIG


# --- API families (the seed's error codes) -------------------------------------------------


class BadRequest(AetherError):
    """Payload or validation failure (HTTP 400 ``bad_request``)."""

    exit_code = EXIT_USAGE
    http_status = 400
    code = "bad_request"


class MissingDigest(BadRequest):
    """Upload without the ``X-Aether-Artifact-Digest`` header (HTTP 400)."""

    code = "missing_digest"


class InvalidDigest(BadRequest):
    """A digest that is not 64 lowercase hex characters (HTTP 400)."""

    code = "invalid_digest"


class DigestMismatch(BadRequest):
    """The stored bytes do not hash to the announced digest (HTTP 400)."""

    code = "digest_mismatch"


class SizeExceeded(BadRequest):
    """An artifact above ``AETHER_MAX_ARTIFACT_SIZE_BYTES`` (HTTP 400)."""

    code = "size_exceeded"


class Unauthorized(AetherError):
    """No bearer token, or one that is unknown, expired or revoked (HTTP 401)."""

    exit_code = EXIT_CONFIG
    http_status = 401
    code = "unauthorized"


class Forbidden(AetherError):
    """A valid token whose role or ownership does not allow the action (HTTP 403)."""

    exit_code = EXIT_CONFIG
    http_status = 403
    code = "forbidden"


class QuotaExceeded(Forbidden):
    """A per-app artifact count or byte quota would be exceeded (HTTP 403)."""

    code = "quota_exceeded"


class NotFound(AetherError):
    """The entity does not exist (HTTP 404)."""

    http_status = 404
    code = "not_found"


class Conflict(AetherError):
    """A uniqueness or state conflict (HTTP 409)."""

    http_status = 409
    code = "conflict"


class IdempotencyConflict(Conflict):
    """An idempotency key reused with a different digest (HTTP 409)."""

    code = "idempotency_conflict"


class PayloadTooLarge(AetherError):
    """A request body above the configured limit (HTTP 413)."""

    exit_code = EXIT_USAGE
    http_status = 413
    code = "payload_too_large"


class ServiceUnavailable(AetherError):
    """A dependency (database, object storage) is not reachable right now (HTTP 503)."""

    http_status = 503
    code = "service_unavailable"
