-- Layered artifacts (docs/artifact-format.md): an artifact of format 2 is a manifest naming
-- layers, each an artifacts row of its own, stored once by digest and shared by every
-- artifact that names it. `kind` tells them apart: 'archive' (a self-contained artifact of
-- format 1, or an upload not yet named by any manifest), 'layered' (a manifest), 'layer'.
-- Retention and quotas count artifacts without layers; a layer row is deleted only when no
-- artifact_layers row names it.
ALTER TABLE artifacts ADD COLUMN kind TEXT NOT NULL DEFAULT 'archive';

CREATE TABLE artifact_layers (
    artifact_id TEXT NOT NULL REFERENCES artifacts(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    layer_digest TEXT NOT NULL,
    PRIMARY KEY (artifact_id, position)
);
CREATE INDEX artifact_layers_digest ON artifact_layers (layer_digest);
