-- Tenancy of artifact bytes (docs/security.md, "Artifacts"): the store keeps one copy of a
-- digest, but an app may deploy it only when it holds a reference to it, which it gets by
-- uploading the bytes itself (or through another app its deployer may deploy). Knowing a
-- digest grants nothing. Keyed by digest, so layers of layered artifacts take references too.
CREATE TABLE artifact_references (
    digest TEXT NOT NULL,
    app_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    created_at {{timestamp}} NOT NULL,
    PRIMARY KEY (digest, app_id)
);
CREATE INDEX artifact_references_app ON artifact_references (app_id);

-- Uploads in progress, one per app and digest: a second app uploading the same digest gets a
-- record (and object key) of its own and never takes over the first one's. Completing it
-- stores the artifact, or, when the digest is stored already, proves possession and adds the
-- reference (the duplicate object is then deleted).
CREATE TABLE artifact_uploads (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    compression TEXT NOT NULL DEFAULT 'zstd',
    storage_key TEXT NOT NULL,
    upload_id TEXT,
    created_at {{timestamp}} NOT NULL,
    UNIQUE (app_id, digest)
);
CREATE INDEX artifact_uploads_created ON artifact_uploads (created_at);

-- Back-fill: the app each stored artifact was uploaded for, and every app that deployed it or
-- has a release of it, holds a reference; pending rows become uploads of their app.
INSERT INTO artifact_references (digest, app_id, created_at)
SELECT digest, app_id, COALESCE(completed_at, created_at) FROM artifacts WHERE status = 'stored';

INSERT INTO artifact_references (digest, app_id, created_at)
SELECT a.digest, d.app_id, MIN(d.created_at) FROM deployments d
JOIN artifacts a ON a.id = d.artifact_id
WHERE NOT EXISTS (
    SELECT 1 FROM artifact_references r WHERE r.digest = a.digest AND r.app_id = d.app_id
)
GROUP BY a.digest, d.app_id;

INSERT INTO artifact_references (digest, app_id, created_at)
SELECT r.artifact_digest, r.app_id, MIN(r.created_at) FROM releases r
JOIN artifacts a ON a.digest = r.artifact_digest AND a.status = 'stored'
WHERE NOT EXISTS (
    SELECT 1 FROM artifact_references x
    WHERE x.digest = r.artifact_digest AND x.app_id = r.app_id
)
GROUP BY r.artifact_digest, r.app_id;

INSERT INTO artifact_uploads (id, app_id, digest, size_bytes, compression, storage_key,
    upload_id, created_at)
SELECT id, app_id, digest, size_bytes, compression, storage_key, upload_id, created_at
FROM artifacts WHERE status = 'pending';

DELETE FROM artifacts WHERE status = 'pending'
