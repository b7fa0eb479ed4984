-- The scoring schema: each lead's features, score, lifecycle and history; the models that
-- score them; the jobs that rescore them. Every table is keyed by tenant first: no query ever
-- crosses tenants.

-- One row per known lead. `features` is the domain's LeadFeatures (db/codec.py): everything
-- the score depends on, in a bounded form. The score columns are the current score as the
-- filters and sorts of ListLeads need them; `score` is the full explained LeadScore
-- (protobuf, with factors) as GetScore answers it. The stage visit (stage, since when,
-- touchpoints while in it) is what the next transition records. Rows are locked per lead
-- (SELECT ... FOR UPDATE, in lead id order) by every change.
CREATE TABLE leads (
    tenant_id text NOT NULL,
    lead_id text NOT NULL,
    features jsonb,
    stage text NOT NULL DEFAULT 'new',
    stage_entered_at timestamptz NOT NULL DEFAULT now(),
    visit_touchpoints jsonb NOT NULL DEFAULT '[]'::jsonb,
    visit_touchpoint_count integer NOT NULL DEFAULT 0,
    total double precision,
    undecayed_total double precision,
    grade text,
    temperature text,
    model_version bigint,
    computed_at timestamptz,
    home_brand_id text NOT NULL DEFAULT '',
    last_activity_at timestamptz,
    score bytea,
    -- When, with no new events, the grade or temperature will next drop (decay job).
    next_check_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, lead_id)
);
CREATE INDEX leads_by_total ON leads (tenant_id, total DESC, lead_id);
CREATE INDEX leads_due ON leads (next_check_at) WHERE next_check_at IS NOT NULL;

-- Anonymous visitors not (yet) aliased to a lead: their features accumulate here until an
-- ingest.subject.aliased merges them into the lead. They have no score of their own.
CREATE TABLE visitors (
    tenant_id text NOT NULL,
    anonymous_id text NOT NULL,
    features jsonb,
    first_seen_at timestamptz,
    first_event_id text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, anonymous_id)
);

-- Anonymous ids merged into leads, so that an anonymous-only event that arrives after its
-- alias still lands on the lead.
CREATE TABLE aliases (
    tenant_id text NOT NULL,
    anonymous_id text NOT NULL,
    lead_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, anonymous_id)
);
CREATE INDEX aliases_by_lead ON aliases (tenant_id, lead_id);

-- Every event scoring counted, once per (tenant, event id): the per-event deduplication
-- (a re-published copy of an ingest message has another message id) and the history that
-- features are rebuilt from when a model changes the decay half-life. lead_id is NULL while
-- the event belongs to an anonymous visitor only.
CREATE TABLE events (
    tenant_id text NOT NULL,
    event_id text NOT NULL,
    lead_id text,
    anonymous_id text,
    event_type text NOT NULL,
    occurred_at timestamptz NOT NULL,
    channel text,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX events_by_lead ON events (tenant_id, lead_id) WHERE lead_id IS NOT NULL;
CREATE INDEX events_by_anonymous ON events (tenant_id, anonymous_id)
    WHERE anonymous_id IS NOT NULL;
CREATE INDEX events_by_age ON events USING brin (occurred_at);

-- A row whenever a recomputation changed a lead's total (at 0.01), grade or temperature.
-- `components` is the ComponentScores (protobuf) without factors.
CREATE TABLE score_history (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id text NOT NULL,
    lead_id text NOT NULL,
    computed_at timestamptz NOT NULL,
    total double precision NOT NULL,
    undecayed_total double precision NOT NULL,
    components bytea NOT NULL,
    grade text NOT NULL,
    temperature text NOT NULL,
    stage text NOT NULL,
    model_version bigint NOT NULL,
    cause text NOT NULL,
    causation_id text NOT NULL
);
CREATE INDEX score_history_by_lead ON score_history (tenant_id, lead_id, computed_at DESC, id DESC);
CREATE INDEX score_history_by_age ON score_history USING brin (computed_at);

-- Every lifecycle transition, oldest first per lead (seq).
CREATE TABLE transitions (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    transition_id text PRIMARY KEY,
    tenant_id text NOT NULL,
    lead_id text NOT NULL,
    from_stage text,
    to_stage text NOT NULL,
    transitioned_at timestamptz NOT NULL,
    reason text NOT NULL,
    trigger text NOT NULL,
    triggering_event_id text NOT NULL DEFAULT '',
    actor text NOT NULL DEFAULT '',
    time_in_previous_stage interval NOT NULL,
    touchpoint_event_ids text[] NOT NULL DEFAULT '{}',
    touchpoint_count integer NOT NULL DEFAULT 0
);
CREATE INDEX transitions_by_lead ON transitions (tenant_id, lead_id, seq);

-- Scoring model versions per tenant (1, 2, ...); the highest is active; none means the
-- built-in model, version 0. `model` is the ScoringModel message as JSON (readable in psql).
CREATE TABLE models (
    tenant_id text NOT NULL,
    version bigint NOT NULL,
    model jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, version)
);

-- Background recomputations (a model's rescoring, ScoreLeads for all leads). A replica
-- holds a job by a lease it renews per chunk; when it dies the lease runs out and another
-- replica resumes after `cursor` (the last lead id done).
CREATE TABLE jobs (
    job_id text PRIMARY KEY,
    tenant_id text NOT NULL,
    kind text NOT NULL,
    state text NOT NULL,
    model_version bigint NOT NULL,
    leads_total bigint NOT NULL DEFAULT 0,
    leads_done bigint NOT NULL DEFAULT 0,
    leads_changed bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz,
    error text NOT NULL DEFAULT '',
    superseded_by_job_id text NOT NULL DEFAULT '',
    cursor text NOT NULL DEFAULT '',
    lease_owner text NOT NULL DEFAULT '',
    lease_until timestamptz,
    attempts integer NOT NULL DEFAULT 0
);
CREATE INDEX jobs_open ON jobs (created_at) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_by_tenant ON jobs (tenant_id, created_at);

-- Erased subjects, as keyed hashes only (HMAC with the tenant's secret below): events of
-- an erased person still in the stream never bring their rows back.
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
