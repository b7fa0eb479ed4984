-- What reporting keeps of the events of scoring, attribution and routing (never read from
-- their tables). Rows are keyed by the publisher's event id, so a redelivered event is
-- stored once; erasure deletes a lead's rows (and an anonymous subject's conversions).

-- The latest score of each lead (scoring.score.changed and scoring.threshold.crossed carry
-- it); an older score arriving late never replaces a newer one.
CREATE TABLE lead_scores (
    tenant_id text NOT NULL,
    lead_id text NOT NULL,
    total double precision NOT NULL,
    grade smallint NOT NULL,
    temperature smallint NOT NULL,
    stage smallint NOT NULL,
    home_brand_id text NOT NULL DEFAULT '',
    computed_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, lead_id)
);

-- Grade and temperature crossings (journey milestones, hot-lead KPI).
CREATE TABLE threshold_crossings (
    tenant_id text NOT NULL,
    event_id text NOT NULL,
    lead_id text NOT NULL,
    dimension smallint NOT NULL,
    direction smallint NOT NULL,
    from_value smallint NOT NULL,
    to_value smallint NOT NULL,
    total double precision NOT NULL,
    home_brand_id text NOT NULL DEFAULT '',
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX threshold_crossings_by_lead ON threshold_crossings (tenant_id, lead_id);
CREATE INDEX threshold_crossings_by_time ON threshold_crossings (tenant_id, occurred_at);

-- Lifecycle transitions (from_stage 0: the initial entry into new).
CREATE TABLE stage_changes (
    tenant_id text NOT NULL,
    event_id text NOT NULL,
    lead_id text NOT NULL,
    from_stage smallint NOT NULL,
    to_stage smallint NOT NULL,
    occurred_at timestamptz NOT NULL,
    time_in_previous_us bigint NOT NULL,
    home_brand_id text NOT NULL DEFAULT '',
    reason text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX stage_changes_by_lead ON stage_changes (tenant_id, lead_id, occurred_at);
CREATE INDEX stage_changes_by_time ON stage_changes (tenant_id, occurred_at);

-- Attributed conversions at their highest revision, and their credits per heuristic model
-- with the touchpoint's marketing context (the groups summaries credit).
CREATE TABLE attributed_conversions (
    tenant_id text NOT NULL,
    conversion_id text NOT NULL,
    revision integer NOT NULL,
    lead_id text NOT NULL DEFAULT '',
    anonymous_id text NOT NULL DEFAULT '',
    conversion_type text NOT NULL,
    occurred_at timestamptz NOT NULL,
    brand_id text NOT NULL DEFAULT '',
    value numeric,
    currency_code text NOT NULL DEFAULT '',
    touchpoints integer NOT NULL,
    PRIMARY KEY (tenant_id, conversion_id)
);
CREATE INDEX attributed_conversions_by_time ON attributed_conversions (tenant_id, occurred_at);
CREATE INDEX attributed_conversions_by_lead ON attributed_conversions (tenant_id, lead_id);
CREATE INDEX attributed_conversions_by_anonymous
    ON attributed_conversions (tenant_id, anonymous_id);

CREATE TABLE attribution_credits (
    tenant_id text NOT NULL,
    conversion_id text NOT NULL,
    model smallint NOT NULL,
    position integer NOT NULL,
    event_id text NOT NULL,
    channel text NOT NULL DEFAULT '',
    source text NOT NULL DEFAULT '',
    medium text NOT NULL DEFAULT '',
    campaign text NOT NULL DEFAULT '',
    brand_id text NOT NULL DEFAULT '',
    share double precision NOT NULL,
    credited_value numeric,
    currency_code text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, conversion_id, model, position)
);

-- Routing outcomes.
CREATE TABLE routes (
    tenant_id text NOT NULL,
    event_id text NOT NULL,
    decision_id text NOT NULL,
    lead_id text NOT NULL,
    home_brand_id text NOT NULL DEFAULT '',
    brand_id text NOT NULL,
    cross_brand boolean NOT NULL,
    trigger smallint NOT NULL,
    rule_id text NOT NULL DEFAULT '',
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX routes_by_lead ON routes (tenant_id, lead_id);
CREATE INDEX routes_by_time ON routes (tenant_id, occurred_at);

CREATE TABLE assignment_breaches (
    tenant_id text NOT NULL,
    event_id text NOT NULL,
    assignment_id text NOT NULL,
    lead_id text NOT NULL,
    brand_id text NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX assignment_breaches_by_lead ON assignment_breaches (tenant_id, lead_id);

CREATE TABLE nurture_steps (
    tenant_id text NOT NULL,
    event_id text NOT NULL,
    enrollment_id text NOT NULL,
    lead_id text NOT NULL,
    sequence_id text NOT NULL,
    step_index integer NOT NULL,
    brand_id text NOT NULL,
    channel smallint NOT NULL,
    due_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX nurture_steps_by_lead ON nurture_steps (tenant_id, lead_id);
