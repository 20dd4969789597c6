-- Claims-import batches applied (docs/import-format.md). A batch's row is written first in
-- the transaction that applies it, so a second import of the same batch waits on the key and
-- then finds it applied; the same id arriving with other content is refused.
CREATE TABLE import_batch (
    id text PRIMARY KEY,
    digest bytea NOT NULL,
    first_line bigint NOT NULL,
    last_line bigint NOT NULL,
    items bigint NOT NULL,
    imported_at_ms bigint NOT NULL
);
