-- A hospital's read of the crew's handoff copy, reported by the bureau, is an access-log entry
-- of its own (myna_domain::access::HospitalRead): these columns are all set for such an entry
-- and all NULL for a crew's access, whose hash is unchanged. On a coordinator the columns are
-- added to the foreign partitions' definitions; `PgProviderStore::connect` then migrates each
-- data node, whose tables hold the rows.
--
-- The columns need the table's lock for a moment: if a long reader (a full `audit verify`, a
-- dump) holds it, the migration gives up after 5 s rather than queue every access behind it,
-- and the provider does not start (start it again once the reader is done). The index is
-- then built over the whole log, holding back appends meanwhile: upgrade in a quiet hour.
SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = 0;
ALTER TABLE access_log
    ADD COLUMN hospital_source_access_id bigint,
    ADD COLUMN hospital_institution_code text,
    ADD COLUMN hospital_name text,
    ADD COLUMN hospital_read_at_ms bigint,
    ADD COLUMN hospital_ems_view_seq bigint;
ALTER TABLE access_log ADD CONSTRAINT access_log_hospital_read_whole CHECK (
    num_nulls(hospital_source_access_id, hospital_institution_code, hospital_name,
              hospital_read_at_ms, hospital_ems_view_seq) IN (0, 5)) NOT VALID;
-- NOT VALID: the rows already held have the five columns NULL, as the check wants; it holds
-- for every row written from now on without a scan of the old ones.
-- A reported read names the crew's access by its id alone (and its organisation and
-- incident); on a coordinator this index is made on each node, not on the foreign partitions.
CREATE INDEX access_log_by_access_id ON access_log (access_id);
