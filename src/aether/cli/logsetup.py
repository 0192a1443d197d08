"""Logging on stderr: text on a terminal, one JSON object per line otherwise.

Levels follow the CLI's names (trace < debug < info < warn < error). A redaction filter
masks bearer tokens and anything that looks like ``token=...`` so secrets never reach logs,
whichever module logged them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

TRACE = 5
LEVELS = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
# "Bearer <t>", "<anything>token=<t>" / "token": "<t>", password and secret keys, and the
# signatures of presigned URLs (S3's X-Amz-Signature, the local store's signature=).
# The \b keeps \w* from being retried at every position of long words (hex digests, ids):
# same matches, ~10x faster on a typical access-log line.
_SECRET = re.compile(
    r"(?i)(bearer\s+|\b\w*(?:token|password|secret|secret_access_key)[\"']?\s*[=:]\s*[\"']?"
    r"|X-Amz-Signature=|signature=)([A-Za-z0-9._~+/=-]{6,})"
)


# Every pattern above contains one of these; most lines (access logs) contain none, and a
# substring test is far cheaper than the regex.
_SECRET_HINTS = ("bearer", "token", "password", "secret", "signature")


def redact(text: str) -> str:
    lowered = text.lower()
    if not any(hint in lowered for hint in _SECRET_HINTS):
        return text
    return _SECRET.sub(lambda m: m.group(1) + "***", text)


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class RedactingFormatter(logging.Formatter):
    """Masks secrets in the whole formatted entry: extra fields and tracebacks included."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": logging.getLevelName(record.levelno).lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in getattr(record, "fields", {}).items():
            entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, fmt: str) -> bool:
    """Send logs to stderr at ``level`` in ``fmt``; returns whether they are JSON lines."""
    logging.addLevelName(TRACE, "TRACE")
    logging.addLevelName(logging.WARNING, "WARN")
    handler = logging.StreamHandler(sys.stderr)
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    inner = (
        JsonFormatter() if use_json else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    handler.setFormatter(RedactingFormatter(inner))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    # Third-party chatter stays at warning unless the user asked for debug or trace.
    if LEVELS[level] > logging.DEBUG:
        for noisy in ("botocore", "aiobotocore", "s3fs", "urllib3", "hypercorn.access", "asyncio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    return use_json
