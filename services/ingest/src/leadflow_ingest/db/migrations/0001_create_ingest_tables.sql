-- The ingest schema: what was received, about whom, and under which consent.
-- Every table is keyed by tenant first: no query ever crosses tenants.

-- Every accepted event, once per (tenant, event id). The columns are what ingest itself
-- queries (duplicates, aliases, erasure, machine detection, retention) and what an operator
-- looks at; `record` is the full RecordedEvent exactly as published (protobuf).
CREATE TABLE events (
    tenant_id text NOT NULL,
    event_id text NOT NULL,
    brand_id text NOT NULL,
    event_type text NOT NULL,
    lead_id text,
    anonymous_id text,
    session_id text NOT NULL,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    channel text,
    flags text[] NOT NULL DEFAULT '{}',
    record bytea NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX events_by_lead ON events (tenant_id, lead_id) WHERE lead_id IS NOT NULL;
CREATE INDEX events_by_anonymous ON events (tenant_id, anonymous_id)
    WHERE anonymous_id IS NOT NULL;
-- Retention deletes by age; a BRIN index costs almost nothing on insert.
CREATE INDEX events_by_age ON events USING brin (occurred_at);

-- One row per subject (a lead, or an anonymous visitor not aliased to one): the open
-- server-assigned session and the last email delivery. Batches lock the rows of their
-- subjects (in key order), so replicas sessionise a subject one batch at a time.
CREATE TABLE subjects (
    tenant_id text NOT NULL,
    subject_key text NOT NULL,
    session_id text,
    session_started_at timestamptz,
    session_last_seen_at timestamptz,
    session_event_count integer NOT NULL DEFAULT 0,
    session_page_views integer NOT NULL DEFAULT 0,
    last_email_sent_at timestamptz,
    PRIMARY KEY (tenant_id, subject_key)
);

-- Sessions: the client's session ids and the ones the server assigned.
-- duration = last_seen_at - started_at; a bounce is a session with one page view.
CREATE TABLE sessions (
    tenant_id text NOT NULL,
    session_id text NOT NULL,
    subject_key text NOT NULL,
    started_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    event_count integer NOT NULL,
    page_views integer NOT NULL,
    client_assigned boolean NOT NULL,
    PRIMARY KEY (tenant_id, session_id)
);
CREATE INDEX sessions_by_subject ON sessions (tenant_id, subject_key);
CREATE INDEX sessions_by_age ON sessions USING brin (last_seen_at);

-- Lead profiles written by Identify (the domain Profile as JSON).
CREATE TABLE profiles (
    tenant_id text NOT NULL,
    lead_id text NOT NULL,
    profile jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, lead_id)
);
CREATE INDEX profiles_by_email ON profiles (tenant_id, lower(profile ->> 'email'));

-- Anonymous ids merged into leads by Alias.
CREATE TABLE aliases (
    tenant_id text NOT NULL,
    anonymous_id text NOT NULL,
    lead_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, anonymous_id)
);
CREATE INDEX aliases_by_lead ON aliases (tenant_id, lead_id);

-- The consent state of a subject (lead when known, else anonymous id), one decision per
-- purpose: {"tracking": {"status", "source", "decided_at"}, "email": ..., ...}.
CREATE TABLE consents (
    tenant_id text NOT NULL,
    subject_key text NOT NULL,
    state jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, subject_key)
);

-- Erasure: the only trace of an erased person is a keyed hash of each identifier, so that
-- later events, profiles and aliases for them are refused.
CREATE TABLE erased_identifiers (
    tenant_id text NOT NULL,
    identifier_hash bytea NOT NULL,
    erasure_id uuid NOT NULL,
    PRIMARY KEY (tenant_id, identifier_hash)
);

CREATE TABLE erasures (
    erasure_id uuid PRIMARY KEY,
    tenant_id text NOT NULL,
    reason text NOT NULL,
    counts jsonb NOT NULL,
    erased_at timestamptz NOT NULL DEFAULT now()
);

-- Per-tenant secret for keyed hashes (erased identifiers, hashed IPs). Generated on first use.
CREATE TABLE tenant_secrets (
    tenant_id text PRIMARY KEY,
    secret bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
