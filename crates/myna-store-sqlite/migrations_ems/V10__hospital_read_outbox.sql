-- A hospital's reads of crews' copies, to be reported to the bureau's provider so the
-- patient's own access history names the hospital. A row is written in the transaction of
-- the view-log entry that records the read, so none is lost; it stays, with the outcome,
-- once settled (delivered_ms or refused_ms set).
CREATE TABLE hospital_read_outbox (
    view_seq INTEGER PRIMARY KEY,
    bureau TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try_ms INTEGER NOT NULL,
    delivered_ms INTEGER,
    provider_access_id INTEGER,
    refused_ms INTEGER,
    last_error TEXT
) STRICT;
CREATE INDEX hospital_read_outbox_due ON hospital_read_outbox (next_try_ms)
    WHERE delivered_ms IS NULL AND refused_ms IS NULL;
