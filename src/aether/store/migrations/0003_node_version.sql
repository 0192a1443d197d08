-- The Node.js major a release was built for (engines.node, .nvmrc or .node-version on the
-- client, else the server's default); NULL for deployments made before it was recorded.
ALTER TABLE deployments ADD COLUMN node_version TEXT;
