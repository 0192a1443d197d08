-- Scale and restart (README "Instances, scale and restart"): each app's instances as its
-- worker last saw them, and why a deployment was made when it was not a new release.

-- One process (local runtime) or pod (Kubernetes) of an app. The worker that holds the app
-- replaces the app's rows whenever what it observes changes (and refreshes seen_at now and
-- then), so every API replica answers `aether ps` alike. `worker` is the holder's id (the
-- workers table's, where a worker registered); the router reads healthy instances'
-- endpoints from here.
CREATE TABLE instances (
    app_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    state TEXT NOT NULL,
    health TEXT NOT NULL,
    restarts INTEGER NOT NULL DEFAULT 0,
    started_at {{timestamp}},
    host TEXT NOT NULL,
    worker TEXT NOT NULL,
    endpoint TEXT,
    seen_at {{timestamp}} NOT NULL,
    PRIMARY KEY (app_id, id)
);

-- 'restart' for a rolling restart (a new rollout of the same release); NULL otherwise.
ALTER TABLE deployments ADD COLUMN reason TEXT;
