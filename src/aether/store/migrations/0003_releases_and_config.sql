-- Releases, config versions and the secrets keys (docs/architecture.md, "Releases and config").
--
-- A release is what an app runs: an artifact, a config version, a one-off environment and how
-- it starts, scales and is health-checked, numbered per app (v1, v2, ...). A deployment is the
-- rollout of a release. Config versions are immutable snapshots of an app's config vars; the
-- app points at its current one. Values are sealed (AES-GCM); only names and fingerprints are
-- readable here.

CREATE TABLE secrets_keys (
    key_id TEXT PRIMARY KEY,
    -- primary: seals new values; retiring: a rotation is moving its values; retired: none left
    state TEXT NOT NULL CHECK (state IN ('primary', 'retiring', 'retired')),
    created_at {{timestamp}} NOT NULL,
    retired_at {{timestamp}}
);
CREATE UNIQUE INDEX secrets_keys_one_primary ON secrets_keys (state) WHERE state = 'primary';

CREATE TABLE config_versions (
    app_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    -- {"NAME": {"fp": fingerprint, "box": sealed value}}
    vars TEXT NOT NULL,
    description TEXT NOT NULL,
    created_by TEXT,
    created_at {{timestamp}} NOT NULL,
    PRIMARY KEY (app_id, version)
);

-- The app's current config version (0: no config vars yet); later releases take it.
ALTER TABLE applications ADD COLUMN config_version INTEGER NOT NULL DEFAULT 0;

CREATE TABLE releases (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('deploy', 'config', 'scale', 'rollback')),
    description TEXT NOT NULL,
    -- by digest, not row: history outlives an artifact that retention deleted
    artifact_digest TEXT NOT NULL,
    config_version INTEGER NOT NULL DEFAULT 0,
    -- the deploy's one-off --env, sealed like config vars
    overrides TEXT NOT NULL DEFAULT '{}',
    -- {"NAME": fingerprint} of the whole environment (config vars and overrides): no values
    env TEXT NOT NULL DEFAULT '{}',
    runtime TEXT NOT NULL DEFAULT 'nodejs',
    node_version TEXT,
    start_command TEXT,
    replicas INTEGER NOT NULL DEFAULT 1,
    health_path TEXT,
    rolled_back_to INTEGER,
    -- a deployment's env held in clear before this migration; sealed (and cleared) by the
    -- server at its next start (aether.store.legacy_env)
    legacy_env TEXT,
    created_by TEXT,
    created_at {{timestamp}} NOT NULL,
    UNIQUE (app_id, version)
);
CREATE INDEX releases_artifact ON releases (artifact_digest);

ALTER TABLE deployments ADD COLUMN release_id TEXT REFERENCES releases(id) ON DELETE CASCADE;
CREATE INDEX deployments_release ON deployments (release_id, created_at);

-- Every existing deployment becomes the rollout of a release of its own (same id).
INSERT INTO releases (id, app_id, version, kind, description, artifact_digest, runtime,
    start_command, replicas, health_path, legacy_env, created_by, created_at)
SELECT d.id, d.app_id,
    ROW_NUMBER() OVER (PARTITION BY d.app_id ORDER BY d.created_at, d.id),
    CASE WHEN d.rolled_back_from IS NULL THEN 'deploy' ELSE 'rollback' END,
    CASE WHEN d.rolled_back_from IS NULL THEN 'Deploy ' ELSE 'Rollback to ' END
        || SUBSTR(a.digest, 1, 12),
    a.digest, d.runtime, d.start_command, d.replicas, d.health_path,
    CASE WHEN d.env = '{}' THEN NULL ELSE d.env END,
    d.created_by, d.created_at
FROM deployments d JOIN artifacts a ON a.id = d.artifact_id;

-- The values move to releases.legacy_env until they are sealed; the deployment keeps names
-- and fingerprints only (written when they are sealed).
UPDATE deployments SET release_id = id, env = '{}';
