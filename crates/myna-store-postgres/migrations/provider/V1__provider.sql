-- The provider on PostgreSQL. Every large table is keyed by the person first (its distribution
-- key on a sharded cluster); the small reference tables (institutions, drugs, organisations)
-- would be replicated to every node. Only portable statements: no sequences, no
-- engine-specific upserts, no extensions.

CREATE TABLE dataset_info (
    key text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE institution (
    code text PRIMARY KEY,
    name text NOT NULL,
    kind text NOT NULL
);

-- Names by YJ code, for records without a レセ電 code.
CREATE TABLE drug (
    yj text PRIMARY KEY,
    receipt_code text,
    name text NOT NULL,
    generic_name text NOT NULL,
    strength text NOT NULL
);

-- One product per レセ電 code.
CREATE TABLE drug_product (
    receipt_code text PRIMARY KEY,
    yj text NOT NULL,
    name text NOT NULL,
    generic_name text NOT NULL,
    strength text NOT NULL
);

CREATE TABLE person (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    name_kana text NOT NULL,
    birth_date date NOT NULL,
    sex smallint NOT NULL,
    postal_code text NOT NULL,
    prefecture text NOT NULL,
    municipality text NOT NULL,
    street text NOT NULL,
    insurer_number text NOT NULL,
    insurer_name text NOT NULL,
    insured_symbol text NOT NULL,
    insured_number text NOT NULL,
    insured_branch text NOT NULL
);

-- The card's serial leads to the person: keyed by the serial (a hashed natural key on a
-- cluster), read once per access before the person's own shard.
CREATE TABLE auth_cert (
    serial text PRIMARY KEY,
    person_id bigint NOT NULL
);

CREATE TABLE revoked_cert (
    serial text PRIMARY KEY,
    revoked_at text NOT NULL,
    reason text NOT NULL
);

CREATE TABLE visit (
    person_id bigint NOT NULL,
    service_date date NOT NULL,
    seq integer NOT NULL,
    available_on date NOT NULL,
    institution_code text NOT NULL,
    department text NOT NULL,
    setting text NOT NULL,
    source text NOT NULL,
    PRIMARY KEY (person_id, service_date, seq)
);

CREATE TABLE dispensing (
    person_id bigint NOT NULL,
    service_date date NOT NULL,
    seq integer NOT NULL,
    available_on date NOT NULL,
    yj text NOT NULL,
    daily_quantity double precision NOT NULL,
    unit text NOT NULL,
    days integer NOT NULL,
    prescriber_code text NOT NULL,
    pharmacy_code text,
    source text NOT NULL,
    receipt_code text,
    PRIMARY KEY (person_id, service_date, seq)
);

CREATE TABLE procedure_record (
    person_id bigint NOT NULL,
    service_date date NOT NULL,
    seq integer NOT NULL,
    available_on date NOT NULL,
    kind text NOT NULL,
    code text NOT NULL,
    name text NOT NULL,
    institution_code text NOT NULL,
    source text NOT NULL,
    PRIMARY KEY (person_id, service_date, seq)
);

CREATE TABLE dialysis (
    person_id bigint NOT NULL,
    service_date date NOT NULL,
    seq integer NOT NULL,
    available_on date NOT NULL,
    modality text NOT NULL,
    sessions integer NOT NULL,
    institution_code text NOT NULL,
    source text NOT NULL,
    PRIMARY KEY (person_id, service_date, seq)
);

CREATE TABLE health_check (
    person_id bigint NOT NULL,
    service_date date NOT NULL,
    seq integer NOT NULL,
    available_on date NOT NULL,
    height_cm double precision NOT NULL,
    weight_kg double precision NOT NULL,
    systolic_mmhg integer NOT NULL,
    diastolic_mmhg integer NOT NULL,
    hba1c_percent double precision,
    ldl_mg_dl integer,
    egfr double precision,
    urine_protein text NOT NULL,
    source text NOT NULL,
    PRIMARY KEY (person_id, service_date, seq)
);

CREATE TABLE organisation (
    id text PRIMARY KEY,
    name text NOT NULL,
    secret_sha256 text NOT NULL,
    disabled boolean NOT NULL DEFAULT false
);

CREATE TABLE organisation_certificate_revocation (
    public_key_sha256 text PRIMARY KEY,
    organisation_id text NOT NULL REFERENCES organisation (id),
    revoked_at text NOT NULL,
    reason text NOT NULL
);

-- Append-only: one hash chain per person (the distribution key), so an append reads and
-- extends only that person's head and never waits for another person's access. The id is
-- made by the provider (time, then random bits), unique within the person's chain and, by
-- its 20 random bits per millisecond, across the log.
CREATE TABLE access_log (
    person_id bigint NOT NULL,
    seq bigint NOT NULL,
    access_id bigint NOT NULL,
    at_ms bigint NOT NULL,
    organisation_id text NOT NULL,
    viewer_organisation text NOT NULL,
    viewer_team text NOT NULL,
    viewer_crew_member text NOT NULL,
    incident_ref text NOT NULL,
    cert_serial text NOT NULL,
    purpose text NOT NULL,
    consent text NOT NULL,
    exception_reason text,
    view text NOT NULL,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (person_id, seq),
    UNIQUE (person_id, access_id)
);
