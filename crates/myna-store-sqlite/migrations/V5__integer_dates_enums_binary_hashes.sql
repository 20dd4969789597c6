-- Dates as days since 1970-01-01, the records' enums as small integers (codes in
-- src/rows.rs, `int_codes!`), and the access log's hashes as 32-byte BLOBs: each record row
-- shrinks by about a third and compares integers. The new tables are STRICT, so a process
-- still running an older binary cannot write text into them.
-- A value with no code, a date that is not a canonical YYYY-MM-DD, or a hash that is not hex
-- becomes NULL, which the NOT NULL columns refuse: a bad row fails the whole migration
-- (naming its table and column) instead of being lost or changed.
-- Cost: every table is copied in one transaction, so the WAL grows by about the size of the
-- new tables and the write lock is held until it ends; run it with the services stopped and
-- the disk room of the file once more (README, "Upgrading"), then VACUUM to return the pages.

CREATE TABLE person_v5 (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    name_kana TEXT NOT NULL,
    birth_date INTEGER NOT NULL,
    sex INTEGER NOT NULL,
    postal_code TEXT NOT NULL,
    prefecture TEXT NOT NULL,
    municipality TEXT NOT NULL,
    street TEXT NOT NULL,
    insurer_number TEXT NOT NULL,
    insurer_name TEXT NOT NULL,
    insured_symbol TEXT NOT NULL,
    insured_number TEXT NOT NULL,
    insured_branch TEXT NOT NULL
) STRICT;
INSERT INTO person_v5 SELECT id, name, name_kana,
    CASE WHEN date(birth_date) IS birth_date THEN CAST(julianday(birth_date) - 2440587.5 AS INTEGER) END, sex, postal_code, prefecture,
    municipality, street, insurer_number, insurer_name, insured_symbol, insured_number,
    insured_branch
FROM person;
DROP TABLE person;
ALTER TABLE person_v5 RENAME TO person;

CREATE TABLE visit_v5 (
    person_id INTEGER NOT NULL,
    service_date INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    available_on INTEGER NOT NULL,
    institution_code TEXT NOT NULL,
    department TEXT NOT NULL,
    setting INTEGER NOT NULL,
    source INTEGER NOT NULL,
    PRIMARY KEY (person_id, service_date, seq)
) STRICT, WITHOUT ROWID;
INSERT INTO visit_v5 SELECT person_id,
    CASE WHEN date(service_date) IS service_date THEN CAST(julianday(service_date) - 2440587.5 AS INTEGER) END, seq,
    CASE WHEN date(available_on) IS available_on THEN CAST(julianday(available_on) - 2440587.5 AS INTEGER) END, institution_code, department,
    CASE setting WHEN 'outpatient' THEN 0 WHEN 'inpatient' THEN 1 END,
    CASE source WHEN 'claims' THEN 0 WHEN 'e_prescription' THEN 1 WHEN 'insurer' THEN 2 END
FROM visit;
DROP TABLE visit;
ALTER TABLE visit_v5 RENAME TO visit;

CREATE TABLE dispensing_v5 (
    person_id INTEGER NOT NULL,
    service_date INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    available_on INTEGER NOT NULL,
    yj TEXT NOT NULL,
    daily_quantity REAL NOT NULL,
    unit TEXT NOT NULL,
    days INTEGER NOT NULL,
    prescriber_code TEXT NOT NULL,
    pharmacy_code TEXT,
    source INTEGER NOT NULL,
    receipt_code TEXT,
    PRIMARY KEY (person_id, service_date, seq)
) STRICT, WITHOUT ROWID;
INSERT INTO dispensing_v5 SELECT person_id,
    CASE WHEN date(service_date) IS service_date THEN CAST(julianday(service_date) - 2440587.5 AS INTEGER) END, seq,
    CASE WHEN date(available_on) IS available_on THEN CAST(julianday(available_on) - 2440587.5 AS INTEGER) END, yj, daily_quantity, unit, days,
    prescriber_code, pharmacy_code,
    CASE source WHEN 'claims' THEN 0 WHEN 'e_prescription' THEN 1 WHEN 'insurer' THEN 2 END,
    receipt_code
FROM dispensing;
DROP TABLE dispensing;
ALTER TABLE dispensing_v5 RENAME TO dispensing;

CREATE TABLE procedure_record_v5 (
    person_id INTEGER NOT NULL,
    service_date INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    available_on INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    institution_code TEXT NOT NULL,
    source INTEGER NOT NULL,
    PRIMARY KEY (person_id, service_date, seq)
) STRICT, WITHOUT ROWID;
INSERT INTO procedure_record_v5 SELECT person_id,
    CASE WHEN date(service_date) IS service_date THEN CAST(julianday(service_date) - 2440587.5 AS INTEGER) END, seq,
    CASE WHEN date(available_on) IS available_on THEN CAST(julianday(available_on) - 2440587.5 AS INTEGER) END,
    CASE kind WHEN 'surgery' THEN 0 WHEN 'procedure' THEN 1 END, code, name, institution_code,
    CASE source WHEN 'claims' THEN 0 WHEN 'e_prescription' THEN 1 WHEN 'insurer' THEN 2 END
FROM procedure_record;
DROP TABLE procedure_record;
ALTER TABLE procedure_record_v5 RENAME TO procedure_record;

CREATE TABLE dialysis_v5 (
    person_id INTEGER NOT NULL,
    service_date INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    available_on INTEGER NOT NULL,
    modality INTEGER NOT NULL,
    sessions INTEGER NOT NULL,
    institution_code TEXT NOT NULL,
    source INTEGER NOT NULL,
    PRIMARY KEY (person_id, service_date, seq)
) STRICT, WITHOUT ROWID;
INSERT INTO dialysis_v5 SELECT person_id,
    CASE WHEN date(service_date) IS service_date THEN CAST(julianday(service_date) - 2440587.5 AS INTEGER) END, seq,
    CASE WHEN date(available_on) IS available_on THEN CAST(julianday(available_on) - 2440587.5 AS INTEGER) END,
    CASE modality WHEN 'hemodialysis' THEN 0 WHEN 'peritoneal' THEN 1 END, sessions,
    institution_code,
    CASE source WHEN 'claims' THEN 0 WHEN 'e_prescription' THEN 1 WHEN 'insurer' THEN 2 END
FROM dialysis;
DROP TABLE dialysis;
ALTER TABLE dialysis_v5 RENAME TO dialysis;

CREATE TABLE health_check_v5 (
    person_id INTEGER NOT NULL,
    service_date INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    available_on INTEGER NOT NULL,
    height_cm REAL NOT NULL,
    weight_kg REAL NOT NULL,
    systolic_mmhg INTEGER NOT NULL,
    diastolic_mmhg INTEGER NOT NULL,
    hba1c_percent REAL,
    ldl_mg_dl INTEGER,
    egfr REAL,
    urine_protein TEXT NOT NULL,
    source INTEGER NOT NULL,
    PRIMARY KEY (person_id, service_date, seq)
) STRICT, WITHOUT ROWID;
INSERT INTO health_check_v5 SELECT person_id,
    CASE WHEN date(service_date) IS service_date THEN CAST(julianday(service_date) - 2440587.5 AS INTEGER) END, seq,
    CASE WHEN date(available_on) IS available_on THEN CAST(julianday(available_on) - 2440587.5 AS INTEGER) END, height_cm, weight_kg,
    systolic_mmhg, diastolic_mmhg, hba1c_percent, ldl_mg_dl, egfr, urine_protein,
    CASE source WHEN 'claims' THEN 0 WHEN 'e_prescription' THEN 1 WHEN 'insurer' THEN 2 END
FROM health_check;
DROP TABLE health_check;
ALTER TABLE health_check_v5 RENAME TO health_check;

CREATE TABLE access_log_v5 (
    seq INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    organisation_id TEXT NOT NULL,
    viewer_organisation TEXT NOT NULL,
    viewer_team TEXT NOT NULL,
    viewer_crew_member TEXT NOT NULL,
    incident_ref TEXT NOT NULL,
    person_id INTEGER NOT NULL,
    cert_serial TEXT NOT NULL,
    purpose TEXT NOT NULL,
    consent TEXT NOT NULL,
    exception_reason TEXT,
    view TEXT NOT NULL,
    prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
    hash BLOB NOT NULL CHECK (length(hash) = 32)
) STRICT;
INSERT INTO access_log_v5 SELECT seq, at_ms, organisation_id, viewer_organisation,
    viewer_team, viewer_crew_member, incident_ref, person_id, cert_serial, purpose, consent,
    exception_reason, view, unhex(prev_hash), unhex(hash)
FROM access_log;
DROP TABLE access_log;
ALTER TABLE access_log_v5 RENAME TO access_log;
CREATE INDEX access_log_by_person ON access_log (person_id, seq);
