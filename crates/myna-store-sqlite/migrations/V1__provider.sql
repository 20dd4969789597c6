-- Provider schema. Dates are ISO 8601 TEXT (YYYY-MM-DD), which sorts correctly and is portable.
CREATE TABLE dataset_info (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE institution (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL
);

-- Drug master as dispensed (names by YJ code).
CREATE TABLE drug (
    yj TEXT PRIMARY KEY,
    receipt_code TEXT,
    name TEXT NOT NULL,
    generic_name TEXT NOT NULL,
    strength TEXT NOT NULL
);

CREATE TABLE person (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    name_kana TEXT NOT NULL,
    birth_date TEXT NOT NULL,
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
);

-- Link from a JPKI auth-certificate serial to the insured person (stand-in for 機関別符号).
CREATE TABLE auth_cert (
    serial TEXT PRIMARY KEY,
    person_id INTEGER NOT NULL
);

CREATE TABLE revoked_cert (
    serial TEXT PRIMARY KEY,
    revoked_at TEXT NOT NULL,
    reason TEXT NOT NULL
);

CREATE TABLE visit (
    person_id INTEGER NOT NULL,
    service_date TEXT NOT NULL,
    seq INTEGER NOT NULL,
    available_on TEXT NOT NULL,
    institution_code TEXT NOT NULL,
    department TEXT NOT NULL,
    setting TEXT NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (person_id, service_date, seq)
) WITHOUT ROWID;

CREATE TABLE dispensing (
    person_id INTEGER NOT NULL,
    service_date TEXT NOT NULL,
    seq INTEGER NOT NULL,
    available_on TEXT NOT NULL,
    yj TEXT NOT NULL,
    daily_quantity REAL NOT NULL,
    unit TEXT NOT NULL,
    days INTEGER NOT NULL,
    prescriber_code TEXT NOT NULL,
    pharmacy_code TEXT,
    source TEXT NOT NULL,
    PRIMARY KEY (person_id, service_date, seq)
) WITHOUT ROWID;

CREATE TABLE procedure_record (
    person_id INTEGER NOT NULL,
    service_date TEXT NOT NULL,
    seq INTEGER NOT NULL,
    available_on TEXT NOT NULL,
    kind TEXT NOT NULL,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    institution_code TEXT NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (person_id, service_date, seq)
) WITHOUT ROWID;

CREATE TABLE dialysis (
    person_id INTEGER NOT NULL,
    service_date TEXT NOT NULL,
    seq INTEGER NOT NULL,
    available_on TEXT NOT NULL,
    modality TEXT NOT NULL,
    sessions INTEGER NOT NULL,
    institution_code TEXT NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (person_id, service_date, seq)
) WITHOUT ROWID;

CREATE TABLE health_check (
    person_id INTEGER NOT NULL,
    service_date TEXT NOT NULL,
    seq INTEGER NOT NULL,
    available_on TEXT NOT NULL,
    height_cm REAL NOT NULL,
    weight_kg REAL NOT NULL,
    systolic_mmhg INTEGER NOT NULL,
    diastolic_mmhg INTEGER NOT NULL,
    hba1c_percent REAL,
    ldl_mg_dl INTEGER,
    egfr REAL,
    urine_protein TEXT NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (person_id, service_date, seq)
) WITHOUT ROWID;

CREATE TABLE organisation (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);

-- Append-only, hash-chained log of every access to a person's records.
CREATE TABLE access_log (
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
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

CREATE INDEX access_log_by_person ON access_log (person_id, seq);
