-- Every idempotency key a complete used, including completes that found the digest already
-- stored (artifacts.idempotency_key keeps only the key of the complete that stored the row).

CREATE TABLE idempotency_keys (
    key TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    duplicate BOOLEAN NOT NULL,
    created_at {{timestamp}} NOT NULL
);
