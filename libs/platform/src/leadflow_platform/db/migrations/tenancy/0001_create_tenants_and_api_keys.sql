-- The tenant directory: portfolios and the API keys that act for them.
-- Written by `leadflow keys`; read by every service's auth interceptor.

CREATE TABLE tenants (
    tenant_id text PRIMARY KEY,
    display_name text NOT NULL DEFAULT '',
    settings jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A key is shown once, as lf_<key_id>_<secret>; only a SHA-256 of the secret is stored
-- (the secret is 256 random bits, so a fast hash is enough).
CREATE TABLE api_keys (
    key_id text PRIMARY KEY,
    tenant_id text NOT NULL REFERENCES tenants (tenant_id),
    secret_sha256 bytea NOT NULL,
    scopes text[] NOT NULL CHECK (cardinality(scopes) > 0),
    name text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);
