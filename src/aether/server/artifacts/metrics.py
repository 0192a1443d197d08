"""The artifact registry's Prometheus metrics (the seed's names), registered once at import.

No per-app labels: cardinality stays constant however many apps a control plane holds.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_SIZE_BUCKETS = tuple(float(2**n) for n in range(20, 34, 2))  # 1 MiB … 8 GiB
_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

PRESIGN_REQUESTS = Counter("artifact_presign_requests_total", "Presign attempts")
PRESIGN_FAILURES = Counter(
    "artifact_presign_failures_total", "Presign errors (object storage or lookup failures)"
)
COMPLETE_FAILURES = Counter(
    "artifact_complete_failures_total", "Completes that failed (verification, quota, storage)"
)
UPLOAD_BYTES = Counter(
    "artifact_upload_bytes_total",
    "Bytes of newly stored objects (presigned, multipart and direct uploads, manifests)",
)
DIGEST_MISMATCHES = Counter(
    "artifact_digest_mismatch_total", "Uploads whose size, recorded sha256 or re-hash mismatched"
)
SIZE_EXCEEDED = Counter(
    "artifact_size_exceeded_total", "Uploads rejected by AETHER_MAX_ARTIFACT_SIZE_BYTES"
)
PENDING_GC_RUNS = Counter("artifact_pending_gc_runs_total", "Pending-upload GC runs")
PENDING_GC_DELETED = Counter(
    "artifact_pending_gc_deleted_total", "Stale pending uploads deleted by GC"
)
EVENTS = Counter("artifact_events_total", "Artifact audit events written")
LEGACY_REQUESTS = Counter(
    "artifact_legacy_upload_requests_total", "Requests to the deprecated POST /artifacts"
)
MULTIPART_INITS = Counter("artifact_multipart_inits_total", "Multipart upload sessions started")
MULTIPART_PART_PRESIGNS = Counter(
    "artifact_multipart_part_presigns_total", "Multipart part presign calls"
)
MULTIPART_COMPLETES = Counter(
    "artifact_multipart_completes_total", "Successful multipart completes"
)
MULTIPART_COMPLETE_FAILURES = Counter(
    "artifact_multipart_complete_failures_total", "Failed multipart completes"
)
QUOTA_EXCEEDED = Counter("artifact_quota_exceeded_total", "Uploads rejected by a per-app quota")
RETENTION_DELETED = Counter(
    "artifact_retention_deleted_total", "Stored artifacts deleted by the retention policy"
)

UPLOADS_IN_PROGRESS = Gauge(
    "artifact_uploads_in_progress", "Legacy direct uploads in flight (including waiting ones)"
)
ARTIFACTS_TOTAL = Gauge("artifacts_total", "Stored artifact rows")

UPLOAD_DURATION = Histogram(
    "artifact_upload_duration_seconds", "Legacy direct upload wall time", buckets=_SECONDS
)
PUT_DURATION = Histogram(
    "artifact_put_duration_seconds",
    "Presign-to-complete time of presigned uploads (single and multipart)",
    buckets=_SECONDS,
)
COMPLETE_DURATION = Histogram(
    "artifact_complete_duration_seconds", "Server-side complete handler time", buckets=_SECONDS
)
MULTIPART_PART_SIZE = Histogram(
    "artifact_multipart_part_size_bytes",
    "Part sizes of completed multipart uploads",
    buckets=_SIZE_BUCKETS,
)
MULTIPART_PARTS = Histogram(
    "artifact_multipart_parts_per_artifact",
    "Part counts of completed multipart uploads",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 10000),
)
