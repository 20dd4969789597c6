-- A hospital's read of the crew's handoff copy, reported by the bureau, is an access-log entry
-- of its own (myna_domain::access::HospitalRead): these columns are all set for such an entry
-- and all NULL for a crew's access, whose hash is unchanged.
ALTER TABLE access_log ADD COLUMN hospital_source_access_id INTEGER;
ALTER TABLE access_log ADD COLUMN hospital_institution_code TEXT;
ALTER TABLE access_log ADD COLUMN hospital_name TEXT;
ALTER TABLE access_log ADD COLUMN hospital_read_at_ms INTEGER;
ALTER TABLE access_log ADD COLUMN hospital_ems_view_seq INTEGER;
-- A report sent again is found among its person's entries (access_log_by_person).
