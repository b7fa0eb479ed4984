-- Counts the changes of a lead's row: a change computed from the row read without a lock
-- (events, the hot path) is written only if the row, once locked, is still at the revision
-- it was computed from; otherwise it is computed again from the locked row.
ALTER TABLE leads ADD COLUMN revision bigint NOT NULL DEFAULT 0;
