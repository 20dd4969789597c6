-- The decisions of writes that span data nodes (the several-node deployment's two-phase
-- commit, src/two_phase.rs). A token committed here means that every node's prepared
-- transaction `myna_provider_<token>` is to be committed; a token absent, once its writer's
-- transaction has ended, means they are to be rolled back. Rows are removed when every node
-- has committed. Empty on one node.
CREATE TABLE node_commit (
    token bigint PRIMARY KEY,
    at_ms bigint NOT NULL
);
