-- The attribution schema: touchpoints, conversions and their credits, the stage changes that
-- anchor W-shaped credit, and the cached data-driven fits. Every table is keyed by tenant
-- first: no query ever crosses tenants.
--
-- Subjects are keyed "lead:<lead id>" or "anon:<anonymous id>" (after aliases), so a lead id
-- and an anonymous id that happen to be equal never meet.

-- Ingest events that carried marketing context, once per (tenant, event id).
CREATE TABLE touchpoints (
    tenant_id text NOT NULL,
    event_id text NOT NULL,
    subject_key text NOT NULL,
    lead_id text,
    anonymous_id text,
    occurred_at timestamptz NOT NULL,
    channel text NOT NULL,
    source text NOT NULL,
    medium text NOT NULL,
    campaign text NOT NULL,
    content text NOT NULL,
    term text NOT NULL,
    brand_id text NOT NULL,
    event_type smallint NOT NULL,
    event_name text NOT NULL,
    session_id text NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX touchpoints_by_subject ON touchpoints (tenant_id, subject_key, occurred_at);
-- Fits read a tenant's touchpoints by time.
CREATE INDEX touchpoints_by_time ON touchpoints (tenant_id, occurred_at);

-- Conversions: ingest events of a type the tenant counts, and stage changes (origin
-- 'stage'). value and currency are NULL when the conversion carried no value. The stored
-- credits were computed with the options in lookback_seconds / last_touch_ignore_direct /
-- half_life_seconds; revision counts the ConversionAttributed events published for it and
-- credits_digest fingerprints the last published credits, so a re-attribution that changes
-- nothing publishes nothing.
CREATE TABLE conversions (
    tenant_id text NOT NULL,
    conversion_id text NOT NULL,
    subject_key text NOT NULL,
    lead_id text,
    anonymous_id text,
    conversion_type text NOT NULL,
    occurred_at timestamptz NOT NULL,
    value numeric,
    currency text,
    brand_id text NOT NULL,
    source_event_id text NOT NULL,
    origin text NOT NULL,
    revision integer NOT NULL DEFAULT 0,
    journey_length integer NOT NULL DEFAULT 0,
    lookback_seconds bigint,
    last_touch_ignore_direct boolean,
    half_life_seconds bigint,
    credits_digest bytea,
    attributed_at timestamptz,
    PRIMARY KEY (tenant_id, conversion_id)
);
CREATE INDEX conversions_by_subject ON conversions (tenant_id, subject_key, occurred_at);
CREATE INDEX conversions_by_time ON conversions (tenant_id, occurred_at);

-- Heuristic credits, one row per (conversion, model, journey position). share has exactly
-- 18 fractional digits and the shares of a (conversion, model) sum to exactly 1; value is
-- in the conversion's currency (NULL without a value) and sums to exactly its value.
CREATE TABLE credits (
    tenant_id text NOT NULL,
    conversion_id text NOT NULL,
    model smallint NOT NULL,
    position integer NOT NULL,
    event_id text NOT NULL,
    share numeric NOT NULL,
    value numeric,
    PRIMARY KEY (tenant_id, conversion_id, model, position)
);

-- Lifecycle stage changes scoring published (stages as leadflow.common.v1.LifecycleStage).
CREATE TABLE stage_changes (
    tenant_id text NOT NULL,
    event_id text NOT NULL,
    lead_id text NOT NULL,
    occurred_at timestamptz NOT NULL,
    from_stage smallint NOT NULL,
    to_stage smallint NOT NULL,
    reason text NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX stage_changes_by_lead ON stage_changes (tenant_id, lead_id, occurred_at);

-- Anonymous ids merged into leads (from ingest.subject.aliased).
CREATE TABLE aliases (
    tenant_id text NOT NULL,
    anonymous_id text NOT NULL,
    lead_id text NOT NULL,
    PRIMARY KEY (tenant_id, anonymous_id)
);
CREATE INDEX aliases_by_lead ON aliases (tenant_id, lead_id);

-- Erasure: the only trace of an erased person is a keyed hash per identifier, so later
-- input about them (a stage change still in flight, a redelivered batch) is dropped.
CREATE TABLE erased_identifiers (
    tenant_id text NOT NULL,
    identifier_hash bytea NOT NULL,
    PRIMARY KEY (tenant_id, identifier_hash)
);

CREATE TABLE tenant_secrets (
    tenant_id text PRIMARY KEY,
    secret bytea NOT NULL
);

-- Data changes per tenant: every transaction that adds, moves or deletes touchpoints or
-- conversions increments it; a fit computed at an older generation is stale.
CREATE TABLE tenant_generations (
    tenant_id text PRIMARY KEY,
    generation bigint NOT NULL
);

-- Data-driven fits (MARKOV, SHAPLEY) per tenant, model, Markov order (0 for SHAPLEY),
-- lookback and training range; range_start/range_end NULL is the tenant's rolling window.
-- A row without computed_at is a fit requested and not yet computed.
CREATE TABLE fits (
    tenant_id text NOT NULL,
    fit_key text NOT NULL,
    model smallint NOT NULL,
    markov_order smallint NOT NULL,
    lookback_seconds bigint NOT NULL,
    range_start timestamptz,
    range_end timestamptz,
    requested_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NOT NULL DEFAULT now(),
    computed_at timestamptz,
    generation bigint,
    training_start timestamptz,
    training_end timestamptz,
    data_through timestamptz,
    journey_count bigint,
    converting_journey_count bigint,
    channel_count integer,
    exact boolean,
    sample_count bigint,
    error_bound double precision,
    error_confidence double precision,
    converged boolean,
    weights jsonb,
    PRIMARY KEY (tenant_id, fit_key)
);
CREATE INDEX fits_to_compute ON fits (computed_at NULLS FIRST);
