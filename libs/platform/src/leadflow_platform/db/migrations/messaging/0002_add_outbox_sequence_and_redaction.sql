-- Where each published row landed in its stream (reconciliation compares the two), and
-- rows whose payload is cleared once published: an erasure event names the person it
-- erases, and after it is out nothing else in the database should.
ALTER TABLE outbox ADD COLUMN stream_sequence bigint;
ALTER TABLE outbox ADD COLUMN redact_after_publish boolean NOT NULL DEFAULT false;
