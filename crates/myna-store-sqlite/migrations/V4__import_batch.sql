-- Claims-import batches applied (docs/import-format.md). A batch is applied once, in the
-- transaction that writes its row; the same id arriving with other content is refused.
CREATE TABLE import_batch (
    id TEXT PRIMARY KEY,
    digest BLOB NOT NULL,
    first_line INTEGER NOT NULL,
    last_line INTEGER NOT NULL,
    items INTEGER NOT NULL,
    imported_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
