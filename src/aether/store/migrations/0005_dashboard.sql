-- The dashboard (docs/dashboard.md): what clients measured per deployment, and browser sessions.

-- What `aether deploy` measured for a deployment on the developer's machine, for display only
-- (nothing decides anything on it): milliseconds per phase, {"install": 812.5, ...,
-- "total": 4210.0}, and the artifact bytes it uploaded or found stored already. `final` is 1
-- once the client reported after following the rollout.
CREATE TABLE deployment_reports (
    deployment_id TEXT PRIMARY KEY REFERENCES deployments(id) ON DELETE CASCADE,
    timings TEXT NOT NULL DEFAULT '{}',
    uploaded_bytes BIGINT,
    skipped_bytes BIGINT,
    final INTEGER NOT NULL DEFAULT 0,
    reported_at {{timestamp}} NOT NULL
);

-- A signed-in browser: the cookie holds a random id, the database only its sha256. The
-- session acts as the token it was opened with, so revoking or expiring that token ends it.
CREATE TABLE dashboard_sessions (
    id_hash TEXT PRIMARY KEY,
    token_id TEXT NOT NULL REFERENCES api_tokens(id) ON DELETE CASCADE,
    -- the session's CSRF token, sent back in every state-changing form
    csrf TEXT NOT NULL,
    created_at {{timestamp}} NOT NULL,
    expires_at {{timestamp}} NOT NULL
);
CREATE INDEX dashboard_sessions_token ON dashboard_sessions (token_id);

-- One-time sign-in links (`aether dashboard`, first start of `aether serve`): the URL holds a
-- random code, the database its sha256; using it deletes it.
CREATE TABLE dashboard_links (
    code_hash TEXT PRIMARY KEY,
    token_id TEXT NOT NULL REFERENCES api_tokens(id) ON DELETE CASCADE,
    expires_at {{timestamp}} NOT NULL
);
