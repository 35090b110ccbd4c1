-- Tables spelt the same way in SQLite and PostgreSQL (appended to each backend's first
-- migration).
CREATE UNIQUE INDEX cases_one_open ON cases (entity, entity_id) WHERE status <> 'closed';
CREATE INDEX cases_last ON cases (last_alert_ms);
CREATE INDEX cases_severity ON cases (max_severity, last_alert_ms);
CREATE INDEX cases_alerts ON cases (alert_count);
CREATE INDEX cases_entity ON cases (entity_id);
CREATE INDEX history_case ON case_history (case_id, id);
CREATE TABLE alerts (
    alert_id TEXT PRIMARY KEY,
    ts_ms BIGINT NOT NULL,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    mode TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    pan_masked TEXT,
    terminal TEXT NOT NULL,
    merchant TEXT,
    reason TEXT NOT NULL,
    case_id BIGINT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX alerts_case ON alerts (case_id, ts_ms);
CREATE INDEX alerts_ts ON alerts (ts_ms);
CREATE INDEX alerts_rule ON alerts (rule, case_id);
CREATE TABLE commands (
    command_id TEXT PRIMARY KEY,
    ts_ms BIGINT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,
    pan_masked TEXT,
    expires_ms BIGINT,
    reason_code TEXT NOT NULL,
    rule TEXT,
    alert_id TEXT,
    control_id TEXT,
    actor TEXT,
    reason TEXT,
    body TEXT NOT NULL
);
CREATE INDEX commands_target ON commands (target, ts_ms);
CREATE INDEX commands_ts ON commands (ts_ms);
CREATE TABLE control (
    id TEXT PRIMARY KEY,
    ts_ms BIGINT NOT NULL,
    control TEXT NOT NULL,
    target TEXT,
    kind TEXT,
    command_id TEXT,
    status TEXT,
    actor TEXT,
    reason TEXT,
    origin TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX control_command ON control (command_id);
CREATE INDEX control_target ON control (target, ts_ms);
CREATE TABLE evidence (
    alert_id TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE ingest_offsets (
    topic TEXT NOT NULL,
    part BIGINT NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (topic, part)
);
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    pw_hash TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    csrf TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
