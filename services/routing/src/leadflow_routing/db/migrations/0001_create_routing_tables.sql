-- Routing's schema: configuration versions, what routing knows of each lead, decisions (the
-- audit trail), routes (the duplicate check), brand turn state, assignments, nurture
-- enrolments and their steps, and sink deliveries (an outbox of its own, drained by the
-- delivery worker with retries).

CREATE TABLE configs (
    tenant_id text NOT NULL,
    version bigint NOT NULL,
    config bytea NOT NULL,              -- leadflow.routing.v1.RoutingConfig, defaults filled in
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    PRIMARY KEY (tenant_id, version)
);

-- One row per tenant, locked by PutRoutingConfig so versions are assigned one at a time.
CREATE TABLE config_heads (
    tenant_id text PRIMARY KEY,
    active_version bigint NOT NULL
);

-- The facts a decision is made on, kept from ingest and scoring events.
CREATE TABLE leads (
    tenant_id text NOT NULL,
    lead_id text NOT NULL,
    home_brand_id text NOT NULL DEFAULT '',
    traits jsonb NOT NULL DEFAULT '{}'::jsonb,
    segment smallint NOT NULL DEFAULT 0,
    score jsonb,
    grade smallint NOT NULL DEFAULT 0,
    temperature smallint NOT NULL DEFAULT 0,
    stage smallint NOT NULL DEFAULT 0,
    consents jsonb NOT NULL DEFAULT '{}'::jsonb,
    first_seen_at timestamptz,
    last_activity_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, lead_id)
);

-- Human events of the last 30 days (recent_event_counts); older rows are pruned.
CREATE TABLE lead_events (
    tenant_id text NOT NULL,
    event_id text NOT NULL,
    lead_id text NOT NULL,
    name text NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX lead_events_by_lead ON lead_events (tenant_id, lead_id, occurred_at);

CREATE TABLE decisions (
    tenant_id text NOT NULL,
    decision_id text NOT NULL,
    lead_id text NOT NULL,
    request_id text,                    -- RouteLead idempotency key
    decided_at timestamptz NOT NULL,
    record bytea NOT NULL,              -- leadflow.routing.v1.RouteDecision with its trace
    PRIMARY KEY (tenant_id, decision_id),
    UNIQUE (tenant_id, request_id)
);
CREATE INDEX decisions_by_lead ON decisions (tenant_id, lead_id, decided_at);

-- "<brand>|<trigger>|<detail>" a lead was routed for: never twice for the same reason.
CREATE TABLE routes (
    tenant_id text NOT NULL,
    lead_id text NOT NULL,
    dedup_key text NOT NULL,
    decision_id text NOT NULL,
    routed_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, lead_id, dedup_key)
);

-- Shared strategy state per brand, locked (FOR UPDATE) while an owner is picked, so
-- replicas never take the same turn.
CREATE TABLE brand_state (
    tenant_id text NOT NULL,
    brand_id text NOT NULL,
    turn bigint NOT NULL DEFAULT 0,
    current_weights jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (tenant_id, brand_id)
);

CREATE TABLE assignments (
    tenant_id text NOT NULL,
    assignment_id text NOT NULL,
    lead_id text NOT NULL,
    brand_id text NOT NULL,
    owner_id text NOT NULL,
    owner_name text NOT NULL DEFAULT '',
    owner_email text NOT NULL DEFAULT '',
    state smallint NOT NULL,
    decision_id text NOT NULL,
    rule_id text NOT NULL,
    strategy smallint NOT NULL,
    fixed_owner_id text NOT NULL DEFAULT '',
    trigger smallint NOT NULL,
    config_version bigint NOT NULL,
    assigned_at timestamptz NOT NULL,
    acknowledge_by timestamptz,
    acknowledged_at timestamptz,
    breached_at timestamptz,
    previous_assignment_id text NOT NULL DEFAULT '',
    next_assignment_id text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, assignment_id)
);
CREATE INDEX assignments_by_owner ON assignments (tenant_id, brand_id, owner_id, assigned_at);
CREATE INDEX assignments_by_lead ON assignments (tenant_id, lead_id);
CREATE INDEX assignments_due ON assignments (acknowledge_by) WHERE state = 1;
CREATE INDEX assignments_newest ON assignments (tenant_id, assigned_at DESC, assignment_id DESC);

CREATE TABLE enrollments (
    tenant_id text NOT NULL,
    enrollment_id text NOT NULL,
    lead_id text NOT NULL,
    brand_id text NOT NULL,
    sequence_id text NOT NULL,
    segment smallint NOT NULL,
    state smallint NOT NULL,
    stop_reason smallint NOT NULL DEFAULT 0,
    channels smallint[] NOT NULL,
    enrolled_at timestamptz NOT NULL,
    ended_at timestamptz,
    decision_id text NOT NULL,
    config_version bigint NOT NULL,
    PRIMARY KEY (tenant_id, enrollment_id)
);
CREATE INDEX enrollments_by_lead ON enrollments (tenant_id, lead_id);
CREATE UNIQUE INDEX enrollments_one_active
    ON enrollments (tenant_id, lead_id, sequence_id, brand_id) WHERE state = 1;
CREATE INDEX enrollments_newest ON enrollments (tenant_id, enrolled_at DESC, enrollment_id DESC);

CREATE TABLE enrollment_steps (
    tenant_id text NOT NULL,
    enrollment_id text NOT NULL,
    step_index integer NOT NULL,
    day_offset integer NOT NULL,
    template text NOT NULL,
    channel smallint NOT NULL,
    due_at timestamptz NOT NULL,
    sent_at timestamptz,
    PRIMARY KEY (tenant_id, enrollment_id, step_index)
);
CREATE INDEX enrollment_steps_due ON enrollment_steps (due_at) WHERE sent_at IS NULL;

-- Sink deliveries, written in the decision's transaction and drained by the delivery worker
-- (claimed with a lease, retried with backoff and jitter, dead-lettered with the reason).
CREATE TABLE deliveries (
    tenant_id text NOT NULL,
    delivery_id text NOT NULL,          -- the routing.lead.routed event id (Idempotency-Key)
    lead_id text NOT NULL,
    brand_id text NOT NULL,
    sink bytea NOT NULL,                -- leadflow.routing.v1.Sink as configured
    body bytea NOT NULL,                -- JSON of the routing.lead.routed event
    state text NOT NULL DEFAULT 'pending',  -- pending | delivered | dead
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    leased_until timestamptz,
    last_error text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    delivered_at timestamptz,
    PRIMARY KEY (tenant_id, delivery_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
