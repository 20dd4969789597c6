-- The privacy officer (個人情報保護責任者): a role of its own, and the review log, a hash chain
-- per bureau of decisions on views made without consent (myna_domain::review::ReviewRecord),
-- appended under the bureau's row lock; one decision per view-log entry.
ALTER TABLE account DROP CONSTRAINT account_role_check;
ALTER TABLE account ADD CONSTRAINT account_role_check
    CHECK (role IN ('dispatcher', 'crew', 'admin', 'hospital', 'privacy_officer'));

CREATE TABLE review_log (
    bureau_id bigint NOT NULL REFERENCES bureau (id),
    seq bigint NOT NULL,
    view_partition bigint NOT NULL,
    view_seq bigint NOT NULL,
    entry text NOT NULL,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL,
    CONSTRAINT review_log_pkey PRIMARY KEY (bureau_id, seq),
    CONSTRAINT review_log_view_key UNIQUE (bureau_id, view_partition, view_seq)
);
