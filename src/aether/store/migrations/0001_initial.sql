-- Aether schema v1. Portable SQL for SQLite and PostgreSQL; {{serial_pk}} and {{timestamp}}
-- are filled per dialect by aether.store.migrate. Ids are UUID strings; timestamps are UTC.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    auth_provider TEXT NOT NULL DEFAULT 'token',
    created_at {{timestamp}} NOT NULL
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'deployer', 'reader', 'puller')),
    token_hash TEXT NOT NULL UNIQUE,
    -- a pull token (role 'puller') may read only this deployment's artifact
    deployment_id TEXT,
    created_at {{timestamp}} NOT NULL,
    expires_at {{timestamp}},
    revoked_at {{timestamp}},
    last_used_at {{timestamp}}
);

CREATE TABLE applications (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    owner TEXT REFERENCES users(id) ON DELETE SET NULL,
    created_at {{timestamp}} NOT NULL
);

CREATE TABLE artifacts (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    digest TEXT NOT NULL UNIQUE,
    runtime TEXT NOT NULL DEFAULT 'nodejs',
    size_bytes BIGINT NOT NULL,
    compression TEXT NOT NULL DEFAULT 'zstd',
    status TEXT NOT NULL CHECK (status IN ('pending', 'stored')),
    storage_key TEXT NOT NULL,
    signature TEXT,
    verified BOOLEAN NOT NULL DEFAULT FALSE,
    manifest_key TEXT,
    sbom_key TEXT,
    idempotency_key TEXT UNIQUE,
    upload_id TEXT,
    created_at {{timestamp}} NOT NULL,
    completed_at {{timestamp}}
);
CREATE INDEX artifacts_app_created ON artifacts (app_id, created_at);
CREATE INDEX artifacts_status_created ON artifacts (status, created_at);

CREATE TABLE artifact_events (
    id {{serial_pk}},
    -- no foreign key: retention events must outlive the artifact row
    artifact_id TEXT,
    digest TEXT NOT NULL,
    app_name TEXT,
    event TEXT NOT NULL,
    detail TEXT,
    created_at {{timestamp}} NOT NULL
);

CREATE TABLE deployments (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    artifact_id TEXT NOT NULL REFERENCES artifacts(id),
    status TEXT NOT NULL CHECK (status IN ('pending', 'deploying', 'running', 'failed', 'superseded')),
    runtime TEXT NOT NULL DEFAULT 'nodejs',
    start_command TEXT,
    env TEXT NOT NULL DEFAULT '{}',
    replicas INTEGER NOT NULL DEFAULT 1,
    health_path TEXT,
    failure_reason TEXT,
    -- where the runtime serves this deployment (local: http://127.0.0.1:PORT)
    endpoint TEXT,
    rolled_back_from TEXT,
    created_by TEXT,
    created_at {{timestamp}} NOT NULL,
    rollout_started_at {{timestamp}},
    rollout_completed_at {{timestamp}}
);
CREATE INDEX deployments_app_created ON deployments (app_id, created_at);
CREATE INDEX deployments_status ON deployments (status);

CREATE TABLE deployment_events (
    id {{serial_pk}},
    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    phase TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    timestamp {{timestamp}} NOT NULL
);
CREATE INDEX deployment_events_deployment ON deployment_events (deployment_id, id);

CREATE TABLE public_keys (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    public_key_hex TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at {{timestamp}} NOT NULL,
    UNIQUE (app_id, public_key_hex)
);

-- One worker owns an app at a time; an expired lease may be taken over.
CREATE TABLE app_leases (
    app_id TEXT PRIMARY KEY REFERENCES applications(id) ON DELETE CASCADE,
    holder TEXT NOT NULL,
    expires_at {{timestamp}} NOT NULL
);
