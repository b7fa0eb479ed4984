-- Real-time rollups, kept as events are applied (in the same statement as the events'
-- insert), and what paths and journeys need from the read model.

-- Integer ids for page paths (kind 1) and custom event names (kind 2), so that reports can
-- fetch events in compact binary form. One sequence: a page id never equals a custom id.
CREATE SEQUENCE name_ids AS integer;
CREATE TABLE names (
    tenant_id text NOT NULL,
    kind smallint NOT NULL,
    name text NOT NULL,
    name_id integer NOT NULL DEFAULT nextval('name_ids') UNIQUE,
    PRIMARY KEY (tenant_id, kind, name)
);

ALTER TABLE events
    ADD COLUMN page_id integer NOT NULL DEFAULT 0,
    ADD COLUMN custom_id integer NOT NULL DEFAULT 0,
    -- A session as one integer (with subject_id): paths group events by it.
    ADD COLUMN session_key bigint GENERATED ALWAYS AS (hashtextextended(session_id, 0)) STORED;

INSERT INTO names (tenant_id, kind, name)
    SELECT DISTINCT tenant_id, 1, page_path FROM events WHERE page_path <> ''
    ON CONFLICT DO NOTHING;
INSERT INTO names (tenant_id, kind, name)
    SELECT DISTINCT tenant_id, 2, custom_name FROM events WHERE custom_name <> ''
    ON CONFLICT DO NOTHING;
UPDATE events e SET page_id = n.name_id FROM names n
    WHERE n.tenant_id = e.tenant_id AND n.kind = 1 AND n.name = e.page_path;
UPDATE events e SET custom_id = n.name_id FROM names n
    WHERE n.tenant_id = e.tenant_id AND n.kind = 2 AND n.name = e.custom_name;

-- Paths and retention read a range's events by time, with the columns they need.
CREATE INDEX events_for_sessions ON events (tenant_id, occurred_at)
    INCLUDE (subject_id, session_key, event_type, page_id, custom_id, brand_id) WHERE NOT machine;

-- Journey milestones.
ALTER TABLE subjects ADD COLUMN identified_at timestamptz;
ALTER TABLE anonymous_ids ADD COLUMN aliased_at timestamptz;

-- Rollups per bucket of `level` minutes (1, 5, 15 and 60), bucket starts aligned to whole
-- multiples of the level in UTC. Human events only (machine engagement is left out of every
-- report). Erasure leaves them alone: they hold counts, never a person.
CREATE TABLE rollup_counts (
    tenant_id text NOT NULL,
    level smallint NOT NULL,
    bucket_start timestamptz NOT NULL,
    brand_id text NOT NULL,
    event_type smallint NOT NULL,
    custom_name text NOT NULL,
    events bigint NOT NULL,
    PRIMARY KEY (tenant_id, level, bucket_start, brand_id, event_type, custom_name)
);

-- Conversions (signup and purchase events) and their summed value per currency ('' for
-- conversions without a value).
CREATE TABLE rollup_conversions (
    tenant_id text NOT NULL,
    level smallint NOT NULL,
    bucket_start timestamptz NOT NULL,
    brand_id text NOT NULL,
    currency_code text NOT NULL,
    conversions bigint NOT NULL,
    value numeric NOT NULL,
    PRIMARY KEY (tenant_id, level, bucket_start, brand_id, currency_code)
);

-- Performance samples as log-scale latency histograms (bin i holds durations in
-- (1.02^(i-1), 1.02^i] ms, so a percentile read from them is within 1% of the exact value;
-- bin 32767 holds samples without a duration), with their error counts.
CREATE TABLE rollup_latency (
    tenant_id text NOT NULL,
    level smallint NOT NULL,
    bucket_start timestamptz NOT NULL,
    brand_id text NOT NULL,
    endpoint text NOT NULL,
    bin smallint NOT NULL,
    samples bigint NOT NULL,
    errors bigint NOT NULL,
    PRIMARY KEY (tenant_id, level, bucket_start, brand_id, endpoint, bin)
);

-- Sessions with a recent event (the active-sessions figure); rows older than the activity
-- window are pruned.
CREATE TABLE recent_sessions (
    tenant_id text NOT NULL,
    brand_id text NOT NULL,
    session_id text NOT NULL,
    subject_id integer NOT NULL,
    last_seen timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, brand_id, session_id)
);
CREATE INDEX recent_sessions_by_time ON recent_sessions (tenant_id, last_seen);
CREATE INDEX recent_sessions_by_subject ON recent_sessions (subject_id);
