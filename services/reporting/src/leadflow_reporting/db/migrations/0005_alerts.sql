-- KPI alerts: the tenant's versioned rules, how far each period kind has been evaluated,
-- and the alerts raised (each published once through the outbox, in the same transaction).

-- Every saved version of a tenant's alert configuration (leadflow.reporting.v1.AlertConfig
-- as saved: defaults filled in, version and updated_at set).
CREATE TABLE alert_configs (
    tenant_id text NOT NULL,
    version bigint NOT NULL,
    config bytea NOT NULL,
    saved_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, version)
);

-- One row per tenant with a configuration: its current version. PutAlertConfig locks it so
-- versions are assigned one at a time; an evaluation reads it under a share lock so it never
-- stores alerts of a version that was replaced meanwhile.
CREATE TABLE alert_config_heads (
    tenant_id text PRIMARY KEY,
    version bigint NOT NULL
);

-- Per tenant and period kind (1 day, 2 ISO week, 3 month): every period ending at or
-- before `evaluated_until` has been evaluated (under the version current at the time).
-- Locked while a period's alerts are stored, so a period is evaluated once across replicas.
CREATE TABLE alert_watermarks (
    tenant_id text NOT NULL,
    period_kind smallint NOT NULL,
    evaluated_until timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, period_kind)
);

-- Raised alerts. Values are numbers (currency_code '') or amounts of currency_code.
CREATE TABLE alerts (
    tenant_id text NOT NULL,
    alert_id text NOT NULL,
    rule_id text NOT NULL,
    config_version bigint NOT NULL,
    kpi smallint NOT NULL,
    brand_id text NOT NULL,
    period_kind smallint NOT NULL,
    period_start timestamptz NOT NULL,
    period_end timestamptz NOT NULL,
    direction smallint NOT NULL,
    currency_code text NOT NULL,
    value numeric NOT NULL,
    threshold numeric NOT NULL,
    previous_value numeric,
    message text NOT NULL,
    raised_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, alert_id)
);
-- ListAlerts (newest first, keyset pages) and the retention job.
CREATE INDEX alerts_newest ON alerts (tenant_id, raised_at DESC, alert_id DESC);
-- Alerts of a range (portfolio metrics, weekly report).
CREATE INDEX alerts_by_period ON alerts (tenant_id, period_start);
