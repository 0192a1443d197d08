-- Many hosts, one control plane (docs/logs.md): apps' output shipped by workers into one
-- table every API replica reads, and the workers themselves, registered and heartbeating.

-- Per app: the last sequence number given to a line, the bytes shipped so far (a line's
-- end_bytes is this running total after it, so a byte budget is one comparison) and the lines
-- dropped because shipping fell behind. A shipper takes this row's lock to number a batch,
-- so an app's lines become visible in sequence order, never with a gap filled in later.
CREATE TABLE log_streams (
    app_id TEXT PRIMARY KEY REFERENCES applications(id) ON DELETE CASCADE,
    last_seq BIGINT NOT NULL DEFAULT 0,
    total_bytes BIGINT NOT NULL DEFAULT 0,
    dropped BIGINT NOT NULL DEFAULT 0
);

-- One line of an app's output. `seq` numbers the app's lines (the cursor every replica
-- understands); `day` (days since 1970-01-01, UTC, of `ts`) is the PostgreSQL partition key,
-- so retention by age drops whole daily partitions. No foreign key: lines of a deleted app
-- are removed by retention (a cascade would touch every partition).
CREATE TABLE log_lines (
    app_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    day INTEGER NOT NULL,
    ts TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    instance TEXT NOT NULL,
    stream TEXT NOT NULL,
    line TEXT NOT NULL,
    end_bytes BIGINT NOT NULL,
    PRIMARY KEY (app_id, seq, day)
) {{partition_by_day}};

-- Where each shipper is in its source (a local runtime's log files of one app, a pod's log),
-- moved in the same transaction as the lines it shipped: a line is stored exactly once even
-- when a worker dies mid-batch.
CREATE TABLE log_sources (
    source TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    position TEXT NOT NULL,
    updated_at {{timestamp}} NOT NULL
);
CREATE INDEX log_sources_app ON log_sources (app_id);

-- Workers: each registers at start and heartbeats (`aether workers`, GET /workers). Each
-- heartbeat moves expires_at AETHER_WORKER_DEAD_SECS ahead; a worker past it is gone, and
-- the apps it leased are taken over at once (store/leases.py), not when the lease runs out.
CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    runtime TEXT NOT NULL,
    version TEXT NOT NULL,
    -- the address other hosts reach its apps on (local runtime), or NULL
    advertise_addr TEXT,
    -- JSON: the sandbox it gives apps ({"isolated": true, "kind": "bubblewrap", ...})
    isolation TEXT NOT NULL DEFAULT '{}',
    -- JSON list of the app names it holds
    apps TEXT NOT NULL DEFAULT '[]',
    started_at {{timestamp}} NOT NULL,
    last_seen {{timestamp}} NOT NULL,
    expires_at {{timestamp}} NOT NULL,
    -- set when it stopped cleanly (its row stays a while so `aether workers` shows it)
    stopped_at {{timestamp}}
);
CREATE INDEX workers_runtime_expires ON workers (runtime, expires_at);
