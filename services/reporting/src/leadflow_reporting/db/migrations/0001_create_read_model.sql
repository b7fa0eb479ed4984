-- The reporting read model, built only from the events of other services (never their
-- tables). Every table is keyed by tenant; no query crosses tenants.

-- One row per person as reporting counts them: a known lead (lead_id) or, until Alias merges
-- it into one, an anonymous visitor. The integer id keeps the events table and the funnel
-- fetch compact.
CREATE SEQUENCE subject_ids AS integer;
CREATE TABLE subjects (
    subject_id integer PRIMARY KEY DEFAULT nextval('subject_ids'),
    tenant_id text NOT NULL,
    lead_id text,
    -- The first anonymous id seen for the subject.
    anonymous_id text,
    home_brand_id text NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX subjects_by_lead ON subjects (tenant_id, lead_id) WHERE lead_id IS NOT NULL;

-- Which subject an anonymous id's events belong to (itself, or its lead after Alias).
CREATE TABLE anonymous_ids (
    tenant_id text NOT NULL,
    anonymous_id text NOT NULL,
    subject_id integer NOT NULL,
    PRIMARY KEY (tenant_id, anonymous_id)
);
CREATE INDEX anonymous_ids_by_subject ON anonymous_ids (subject_id);

-- Raw events, once per (tenant, event id). Marketing context, geo and page are columns
-- (the fields reports filter and break down by); the rest of the event is in properties.
CREATE TABLE events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id text NOT NULL,
    event_id text NOT NULL,
    subject_id integer NOT NULL,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz,
    event_type smallint NOT NULL,
    custom_name text NOT NULL DEFAULT '',
    -- Machine email engagement and bots: left out of reports unless asked for.
    machine boolean NOT NULL DEFAULT false,
    brand_id text NOT NULL DEFAULT '',
    session_id text NOT NULL DEFAULT '',
    page_url text NOT NULL DEFAULT '',
    page_path text NOT NULL DEFAULT '',
    referrer text NOT NULL DEFAULT '',
    channel text NOT NULL DEFAULT '',
    source text NOT NULL DEFAULT '',
    medium text NOT NULL DEFAULT '',
    campaign text NOT NULL DEFAULT '',
    content text NOT NULL DEFAULT '',
    term text NOT NULL DEFAULT '',
    country text NOT NULL DEFAULT '',
    region text NOT NULL DEFAULT '',
    city text NOT NULL DEFAULT '',
    value_units bigint,
    value_nanos integer,
    currency_code text NOT NULL DEFAULT '',
    properties jsonb
);
CREATE UNIQUE INDEX events_by_event_id ON events (tenant_id, event_id);
-- The funnel fetch: the events of the step types in a range, read from the index alone when
-- no filter needs the row.
CREATE INDEX events_for_funnels ON events (tenant_id, event_type, occurred_at)
    INCLUDE (subject_id, id) WHERE NOT machine;
-- STRICT funnels read every event of a range; alias and erasure move or delete a subject's.
CREATE INDEX events_by_time ON events (tenant_id, occurred_at) WHERE NOT machine;
CREATE INDEX events_by_subject ON events (subject_id);

-- Erased identifiers, as keyed hashes only, so that an erased person's events still in the
-- stream never bring them back.
CREATE TABLE tenant_secrets (
    tenant_id text PRIMARY KEY,
    secret bytea NOT NULL
);
CREATE TABLE erased_identifiers (
    tenant_id text NOT NULL,
    identifier_hash bytea NOT NULL,
    erased_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, identifier_hash)
);
