-- A hospital's reads of crews' copies, to be reported to the bureau's provider so the
-- patient's own access history names the hospital. A row is written in the transaction of
-- the view-log entry that records the read, so none is lost; it stays, with the outcome,
-- once settled (delivered_ms or refused_ms set). Keyed like the view log: by bureau.
CREATE TABLE hospital_read_outbox (
    bureau_id bigint NOT NULL REFERENCES bureau (id),
    view_seq bigint NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_try_ms bigint NOT NULL,
    delivered_ms bigint,
    provider_access_id bigint,
    refused_ms bigint,
    last_error text,
    CONSTRAINT hospital_read_outbox_pkey PRIMARY KEY (bureau_id, view_seq)
);
CREATE INDEX hospital_read_outbox_due ON hospital_read_outbox (next_try_ms)
    WHERE delivered_ms IS NULL AND refused_ms IS NULL;
