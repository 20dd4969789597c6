-- The view audit becomes one hash chain per bureau, keyed by the bureau's id (the distribution
-- key of operational data): a view appends to its own bureau's chain under that bureau's head
-- row, so bureaus never wait for one another, and `verify_view_log` walks the chains in
-- (bureau_id, seq) order, checking each head row against its chain's last entry.
--
-- V1's single chain was an interim that no deployment used. Its entries are not re-chained
-- (that would rewrite audit evidence): a database that holds any is refused here. Its
-- operator verifies them with the previous release (`ems verify-views`), keeps a copy
-- (`pg_dump --table=view_log --table=view_log_head`), empties view_log, and upgrades.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM view_log) THEN
        RAISE EXCEPTION 'view_log holds entries of the interim single chain: verify them (ems verify-views), keep a copy (pg_dump --table=view_log --table=view_log_head), empty view_log, then upgrade';
    END IF;
END
$$;

DROP TABLE view_log_head;
DROP TABLE view_log;

CREATE TABLE view_log (
    bureau_id bigint NOT NULL REFERENCES bureau (id),
    seq bigint NOT NULL,
    entry text NOT NULL,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL,
    CONSTRAINT view_log_pkey PRIMARY KEY (bureau_id, seq)
);

-- Each bureau's chain head (seq 0 and no hash while it is empty), written when the bureau is
-- seeded. An append locks it; verification reads it first, so entries removed from the end
-- of a chain (with or without their head) are found.
CREATE TABLE view_log_head (
    bureau_id bigint CONSTRAINT view_log_head_pkey PRIMARY KEY REFERENCES bureau (id),
    seq bigint NOT NULL,
    hash bytea
);
INSERT INTO view_log_head (bureau_id, seq, hash) SELECT id, 0, NULL FROM bureau;
