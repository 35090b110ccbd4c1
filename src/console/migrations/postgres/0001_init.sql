-- The console's tables (PostgreSQL). The SQLite file beside this one declares the same
-- tables; only the auto-numbered keys are spelt differently.
CREATE TABLE cases (
    id BIGSERIAL PRIMARY KEY,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    pan_masked TEXT,
    status TEXT NOT NULL,
    assignee TEXT,
    disposition TEXT,
    disposed_at_ms BIGINT,
    disposed_by TEXT,
    opened_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    first_alert_ms BIGINT NOT NULL,
    last_alert_ms BIGINT NOT NULL,
    alert_count BIGINT NOT NULL,
    max_severity BIGINT NOT NULL,
    last_rule TEXT NOT NULL,
    last_reason TEXT NOT NULL
);
CREATE TABLE case_history (
    id BIGSERIAL PRIMARY KEY,
    case_id BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE audit (
    id BIGSERIAL PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE ingest_rejects (
    id BIGSERIAL PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    raw TEXT NOT NULL
);
