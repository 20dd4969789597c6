-- 救急統計: one row per incident, what it contributes to the bureau's figures
-- (myna_domain::stats::IncidentFacts of its log), written in the transaction of every append
-- under the incident's row lock, so it never disagrees with the log. Distributed by the bureau
-- like the incident. Incidents from before this schema are filled in when the store connects.
CREATE TABLE incident_facts (
    bureau_id bigint NOT NULL,
    incident_id bigint NOT NULL,
    created_ms bigint NOT NULL,
    team_id bigint,
    ward text,
    outcome text,
    consent_or_exception boolean NOT NULL,
    views integer NOT NULL,
    exception_views integer NOT NULL,
    arrival_contact_s bigint,
    contact_vehicle_s bigint,
    vehicle_departure_s bigint,
    arrival_departure_s bigint,
    inquiries integer NOT NULL,
    difficult boolean NOT NULL,
    transported boolean NOT NULL,
    CONSTRAINT incident_facts_pkey PRIMARY KEY (bureau_id, incident_id),
    FOREIGN KEY (bureau_id, incident_id) REFERENCES incident (bureau_id, id)
);
CREATE INDEX incident_facts_time ON incident_facts (bureau_id, created_ms);
