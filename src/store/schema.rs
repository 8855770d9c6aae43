//! The database schema as a list of forward-only migrations. Version N of the
//! schema is the result of applying `MIGRATIONS[0..N]` in order; the version is
//! kept in `PRAGMA user_version`. Never edit a shipped migration: add a new one.

/// SQLite `application_id` identifying a Switchboard database ("SWBD").
pub const APPLICATION_ID: i32 = 0x5357_4244;

pub const MIGRATIONS: &[&str] = &[
    // v1: suppliers, weddings, provider accounts, gateway tokens, usage ledger,
    // daily rollups, append-only audit log.
    r#"
CREATE TABLE suppliers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    vendor_type TEXT NOT NULL,
    tier TEXT NOT NULL,
    ai_mode TEXT NOT NULL,
    allow_platform_failover INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX suppliers_name ON suppliers(name COLLATE NOCASE);

CREATE TABLE weddings (
    supplier_id INTEGER NOT NULL REFERENCES suppliers(id) ON DELETE CASCADE,
    day TEXT NOT NULL,
    PRIMARY KEY (supplier_id, day)
) WITHOUT ROWID;
CREATE INDEX weddings_day ON weddings(day);

CREATE TABLE provider_accounts (
    id INTEGER PRIMARY KEY,
    owner_supplier_id INTEGER REFERENCES suppliers(id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    label TEXT NOT NULL,
    base_url TEXT NOT NULL,
    azure_deployment TEXT,
    azure_api_version TEXT,
    default_model TEXT NOT NULL,
    key_ref TEXT,
    key_fingerprint TEXT,
    last_validated_at TEXT,
    last_validation TEXT,
    last_validation_message TEXT,
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);
CREATE INDEX provider_accounts_owner ON provider_accounts(owner_supplier_id);

CREATE TABLE gateway_tokens (
    id INTEGER PRIMARY KEY,
    supplier_id INTEGER NOT NULL REFERENCES suppliers(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);
CREATE INDEX gateway_tokens_supplier ON gateway_tokens(supplier_id);

-- One row per request. Enums are small integer codes (see domain::usage) to
-- keep ten million rows compact; ts is Unix milliseconds (UTC).
CREATE TABLE usage_events (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    ts INTEGER NOT NULL,
    supplier_id INTEGER NOT NULL,
    account_id INTEGER,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    request_type INTEGER NOT NULL,
    route INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    estimated INTEGER NOT NULL DEFAULT 0,
    cost_micros INTEGER NOT NULL,
    latency_ms INTEGER NOT NULL,
    status INTEGER NOT NULL,
    error_class TEXT
);
CREATE INDEX usage_events_ts ON usage_events(ts);
CREATE INDEX usage_events_supplier_ts ON usage_events(supplier_id, ts);

-- Daily rollups (UTC days), kept current by the ledger writer.
CREATE TABLE usage_daily (
    day TEXT NOT NULL,
    supplier_id INTEGER NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    request_type INTEGER NOT NULL,
    route INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_micros INTEGER NOT NULL,
    latency_ms_sum INTEGER NOT NULL,
    PRIMARY KEY (day, supplier_id, provider, model, request_type, route)
) WITHOUT ROWID;
CREATE INDEX usage_daily_supplier ON usage_daily(supplier_id, day);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    supplier_id INTEGER,
    account_id INTEGER,
    result TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_ts ON audit_log(ts);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"#,
    // v2: provider health history, alerts, migrations and their phases.
    r#"
CREATE TABLE health_samples (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    latency_ms INTEGER NOT NULL,
    error_class TEXT,
    source TEXT NOT NULL
);
CREATE INDEX health_samples_account_ts ON health_samples(account_id, ts);

CREATE TABLE health_aggregates (
    account_id INTEGER NOT NULL,
    bucket_secs INTEGER NOT NULL,
    bucket_start INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    latency_ms_sum INTEGER NOT NULL,
    latency_ms_max INTEGER NOT NULL,
    PRIMARY KEY (account_id, bucket_secs, bucket_start)
) WITHOUT ROWID;

CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    condition_key TEXT NOT NULL,
    severity TEXT NOT NULL,
    supplier_id INTEGER,
    account_id INTEGER,
    message TEXT NOT NULL,
    raised_at TEXT NOT NULL,
    escalated_at TEXT,
    acknowledged_at TEXT,
    resolved_at TEXT
);
CREATE UNIQUE INDEX alerts_one_open_per_condition ON alerts(condition_key) WHERE resolved_at IS NULL;

CREATE TABLE migrations (
    id INTEGER PRIMARY KEY,
    supplier_id INTEGER NOT NULL REFERENCES suppliers(id) ON DELETE CASCADE,
    from_route TEXT NOT NULL,
    to_route TEXT NOT NULL,
    state TEXT NOT NULL,
    plan TEXT NOT NULL,
    current_phase INTEGER NOT NULL DEFAULT 0,
    phase_started_at TEXT,
    phase_elapsed_ms INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE migration_phases (
    migration_id INTEGER NOT NULL REFERENCES migrations(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    traffic_percent INTEGER NOT NULL,
    min_duration_secs INTEGER NOT NULL,
    started_at TEXT,
    ended_at TEXT,
    outcome TEXT,
    requests INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0,
    p95_ms INTEGER,
    PRIMARY KEY (migration_id, idx)
) WITHOUT ROWID;
"#,
    // v3: a catalog version bumped on every change the router must reload.
    r#"
CREATE TABLE catalog_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
INSERT INTO catalog_version (id, version) VALUES (1, 0);
CREATE TRIGGER cv_suppliers_i AFTER INSERT ON suppliers BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_suppliers_u AFTER UPDATE ON suppliers BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_suppliers_d AFTER DELETE ON suppliers BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_weddings_i AFTER INSERT ON weddings BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_weddings_d AFTER DELETE ON weddings BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_accounts_i AFTER INSERT ON provider_accounts BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_accounts_u AFTER UPDATE OF owner_supplier_id, provider, base_url, azure_deployment, azure_api_version,
    default_model, key_ref, enabled ON provider_accounts BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_accounts_d AFTER DELETE ON provider_accounts BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_tokens_i AFTER INSERT ON gateway_tokens BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_tokens_u AFTER UPDATE OF revoked_at ON gateway_tokens BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_tokens_d AFTER DELETE ON gateway_tokens BEGIN UPDATE catalog_version SET version = version + 1; END;
"#,
    // v4: migration phase figures that survive a restart, parallel test
    // reports and recommendations.
    r#"
ALTER TABLE migration_phases ADD COLUMN latency_hist TEXT NOT NULL DEFAULT '[]';
ALTER TABLE migrations ADD COLUMN criteria TEXT NOT NULL DEFAULT '{}';
CREATE INDEX migrations_supplier ON migrations(supplier_id, state);
CREATE TABLE parallel_tests (
    id INTEGER PRIMARY KEY,
    supplier_id INTEGER NOT NULL REFERENCES suppliers(id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    report TEXT NOT NULL
);
CREATE TABLE recommendations (
    id INTEGER PRIMARY KEY,
    supplier_id INTEGER NOT NULL REFERENCES suppliers(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TEXT NOT NULL,
    dismissed_at TEXT
);
CREATE UNIQUE INDEX recommendations_one_open ON recommendations(supplier_id, kind) WHERE dismissed_at IS NULL;
"#,
    // v5: coarser usage rollups for the analytics dashboards (kept current by
    // the ledger writer in the same transaction as usage_daily, rebuilt with
    // it), back-filled from usage_daily.
    r#"
-- All suppliers together, by day and the dimensions the charts break down by.
-- vendor_type is the supplier's vendor type when the usage was recorded.
CREATE TABLE usage_daily_dims (
    day TEXT NOT NULL,
    vendor_type TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    request_type INTEGER NOT NULL,
    route INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_micros INTEGER NOT NULL,
    latency_ms_sum INTEGER NOT NULL,
    PRIMARY KEY (day, vendor_type, provider, model, request_type, route)
) WITHOUT ROWID;

-- Per supplier and calendar month ('YYYY-MM'): quotas, rankings, seasonal
-- analysis per supplier, projections and cost comparison.
CREATE TABLE usage_monthly_supplier (
    month TEXT NOT NULL,
    supplier_id INTEGER NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    route INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_micros INTEGER NOT NULL,
    latency_ms_sum INTEGER NOT NULL,
    PRIMARY KEY (month, supplier_id, provider, model, route)
) WITHOUT ROWID;
CREATE INDEX usage_monthly_supplier_supplier ON usage_monthly_supplier(supplier_id, month);

-- Per supplier and month, everything summed: quota use, rankings, projections.
-- quota_tokens: tokens on the platform and failover routes.
CREATE TABLE usage_supplier_month (
    month TEXT NOT NULL,
    supplier_id INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_micros INTEGER NOT NULL,
    latency_ms_sum INTEGER NOT NULL,
    quota_tokens INTEGER NOT NULL,
    PRIMARY KEY (month, supplier_id)
) WITHOUT ROWID;

-- Per supplier and day, everything summed: one supplier's series in one range scan.
CREATE TABLE usage_supplier_day (
    supplier_id INTEGER NOT NULL,
    day TEXT NOT NULL,
    requests INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_micros INTEGER NOT NULL,
    latency_ms_sum INTEGER NOT NULL,
    quota_tokens INTEGER NOT NULL,
    PRIMARY KEY (supplier_id, day)
) WITHOUT ROWID;

INSERT INTO usage_daily_dims
SELECT d.day, coalesce(s.vendor_type, 'unknown'), d.provider, d.model, d.request_type, d.route, sum(d.requests), sum(d.errors),
    sum(d.input_tokens), sum(d.output_tokens), sum(d.cached_tokens), sum(d.cache_write_tokens), sum(d.reasoning_tokens),
    sum(d.cost_micros), sum(d.latency_ms_sum)
FROM usage_daily d LEFT JOIN suppliers s ON s.id = d.supplier_id GROUP BY 1, 2, 3, 4, 5, 6;

INSERT INTO usage_monthly_supplier
SELECT substr(day, 1, 7), supplier_id, provider, model, route, sum(requests), sum(errors), sum(input_tokens), sum(output_tokens),
    sum(cached_tokens), sum(cache_write_tokens), sum(reasoning_tokens), sum(cost_micros), sum(latency_ms_sum)
FROM usage_daily GROUP BY 1, 2, 3, 4, 5;

INSERT INTO usage_supplier_month
SELECT substr(day, 1, 7), supplier_id, sum(requests), sum(errors), sum(input_tokens), sum(output_tokens), sum(cached_tokens),
    sum(cache_write_tokens), sum(reasoning_tokens), sum(cost_micros), sum(latency_ms_sum),
    sum(CASE WHEN route IN (0, 2) THEN input_tokens + cached_tokens + cache_write_tokens + output_tokens ELSE 0 END)
FROM usage_daily GROUP BY 1, 2;

INSERT INTO usage_supplier_day
SELECT supplier_id, day, sum(requests), sum(errors), sum(input_tokens), sum(output_tokens), sum(cached_tokens),
    sum(cache_write_tokens), sum(reasoning_tokens), sum(cost_micros), sum(latency_ms_sum),
    sum(CASE WHEN route IN (0, 2) THEN input_tokens + cached_tokens + cache_write_tokens + output_tokens ELSE 0 END)
FROM usage_daily GROUP BY 1, 2;
"#,
    // v6: the rollups are folded from the events behind a watermark, so that a
    // request's commit writes only its event row (see store::usage).
    r#"
-- Every usage event with id <= last_event_id is counted in every rollup.
CREATE TABLE usage_rollup_watermark (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_event_id INTEGER NOT NULL
);
-- Up to v5 the rollups were written with each event: all current.
INSERT INTO usage_rollup_watermark (id, last_event_id) SELECT 1, coalesce(max(id), 0) FROM usage_events;
"#,
    // v7: parallel tests on mirrored live traffic. The routing runtime copies a
    // sample of the supplier's live requests to the candidate account (shadow
    // usage whose request id is `m<mirror id>~<original request id>`) until
    // enough are compared or the deadline passes; the report is built from the
    // ledger. A change bumps the catalog version so the runtime adopts it.
    r#"
CREATE TABLE parallel_mirrors (
    id INTEGER PRIMARY KEY,
    supplier_id INTEGER NOT NULL REFERENCES suppliers(id) ON DELETE CASCADE,
    account_id INTEGER NOT NULL REFERENCES provider_accounts(id) ON DELETE CASCADE,
    sample_percent INTEGER NOT NULL CHECK (sample_percent BETWEEN 1 AND 100),
    target_requests INTEGER NOT NULL CHECK (target_requests > 0),
    created_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    -- running, finishing (a process is writing its report), done, expired, stopped
    state TEXT NOT NULL,
    report_id INTEGER REFERENCES parallel_tests(id) ON DELETE SET NULL,
    reason TEXT,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX parallel_mirrors_one_running ON parallel_mirrors(supplier_id) WHERE state IN ('running', 'finishing');
CREATE TRIGGER cv_mirrors_i AFTER INSERT ON parallel_mirrors BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_mirrors_u AFTER UPDATE OF state ON parallel_mirrors BEGIN UPDATE catalog_version SET version = version + 1; END;
"#,
    // v8 (usage event ids): every usage row has its own event id, the
    // ledger's deduplication key (a UUIDv7 made by the router; a mirror copy's
    // is `m<mirror id>~<original event id>`). The unique column that held the
    // client's request id becomes `event_id`, so every old row's event id is
    // its old request id and old mirror copies still pair with their
    // originals; `request_id` is now only the client's tracing id (NULL on
    // rows written before v8: read `coalesce(request_id, event_id)`), and
    // `idempotency_key` the `Idempotency-Key` header's value. No row is
    // rewritten: the migration is instant on a ledger of any size.
    r#"
ALTER TABLE usage_events RENAME COLUMN request_id TO event_id;
ALTER TABLE usage_events ADD COLUMN request_id TEXT;
ALTER TABLE usage_events ADD COLUMN idempotency_key TEXT;
CREATE INDEX usage_events_idempotency ON usage_events(supplier_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
"#,
    // v9 (issue 21): ids of suppliers, provider accounts and gateway tokens are
    // never reused (AUTOINCREMENT; the sequence starts above every id ever seen,
    // including ids that survive only in the ledger, rollups, alerts, health
    // history or the audit log), and a supplier has a time zone (IANA name)
    // whose local date decides its wedding days. The three tables are rebuilt
    // (SQLite cannot change a primary key) with their indexes and catalog
    // triggers; `Store::prepare` turns foreign keys off around each step and
    // checks them before the commit, so the rebuild cascades nothing. Also a
    // random tag of this database, put into the names of the keychain entries
    // it makes, so that its orphaned entries can be told from another
    // database's in the same keychain.
    r#"
CREATE TABLE store_instance (id INTEGER PRIMARY KEY CHECK (id = 1), tag TEXT NOT NULL);
INSERT INTO store_instance (id, tag) VALUES (1, lower(hex(randomblob(6))));

CREATE TABLE suppliers_v9 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    vendor_type TEXT NOT NULL,
    tier TEXT NOT NULL,
    ai_mode TEXT NOT NULL,
    allow_platform_failover INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    time_zone TEXT NOT NULL DEFAULT 'UTC'
);
INSERT INTO suppliers_v9 (id, name, vendor_type, tier, ai_mode, allow_platform_failover, created_at, updated_at)
    SELECT id, name, vendor_type, tier, ai_mode, allow_platform_failover, created_at, updated_at FROM suppliers;
DROP TABLE suppliers;
ALTER TABLE suppliers_v9 RENAME TO suppliers;
CREATE UNIQUE INDEX suppliers_name ON suppliers(name COLLATE NOCASE);

CREATE TABLE provider_accounts_v9 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_supplier_id INTEGER REFERENCES suppliers(id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    label TEXT NOT NULL,
    base_url TEXT NOT NULL,
    azure_deployment TEXT,
    azure_api_version TEXT,
    default_model TEXT NOT NULL,
    key_ref TEXT,
    key_fingerprint TEXT,
    last_validated_at TEXT,
    last_validation TEXT,
    last_validation_message TEXT,
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);
INSERT INTO provider_accounts_v9 SELECT id, owner_supplier_id, provider, label, base_url, azure_deployment, azure_api_version,
    default_model, key_ref, key_fingerprint, last_validated_at, last_validation, last_validation_message, enabled, created_at
    FROM provider_accounts;
DROP TABLE provider_accounts;
ALTER TABLE provider_accounts_v9 RENAME TO provider_accounts;
CREATE INDEX provider_accounts_owner ON provider_accounts(owner_supplier_id);

CREATE TABLE gateway_tokens_v9 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    supplier_id INTEGER NOT NULL REFERENCES suppliers(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);
INSERT INTO gateway_tokens_v9 SELECT id, supplier_id, token_hash, hint, created_at, last_used_at, revoked_at FROM gateway_tokens;
DROP TABLE gateway_tokens;
ALTER TABLE gateway_tokens_v9 RENAME TO gateway_tokens;
CREATE INDEX gateway_tokens_supplier ON gateway_tokens(supplier_id);

DELETE FROM sqlite_sequence WHERE name IN ('suppliers', 'provider_accounts', 'gateway_tokens');
INSERT INTO sqlite_sequence (name, seq) SELECT 'suppliers', coalesce(max(v), 0) FROM (
    SELECT max(id) AS v FROM suppliers UNION ALL SELECT max(supplier_id) FROM usage_events
    UNION ALL SELECT max(supplier_id) FROM usage_daily UNION ALL SELECT max(supplier_id) FROM usage_supplier_month
    UNION ALL SELECT max(supplier_id) FROM audit_log UNION ALL SELECT max(supplier_id) FROM alerts
    UNION ALL SELECT max(supplier_id) FROM migrations UNION ALL SELECT max(supplier_id) FROM parallel_tests
    UNION ALL SELECT max(supplier_id) FROM recommendations UNION ALL SELECT max(supplier_id) FROM parallel_mirrors);
INSERT INTO sqlite_sequence (name, seq) SELECT 'provider_accounts', coalesce(max(v), 0) FROM (
    SELECT max(id) AS v FROM provider_accounts UNION ALL SELECT max(account_id) FROM usage_events
    UNION ALL SELECT max(account_id) FROM audit_log UNION ALL SELECT max(account_id) FROM alerts
    UNION ALL SELECT max(account_id) FROM health_samples UNION ALL SELECT max(account_id) FROM health_aggregates
    UNION ALL SELECT max(account_id) FROM parallel_tests UNION ALL SELECT max(account_id) FROM parallel_mirrors);
INSERT INTO sqlite_sequence (name, seq) SELECT 'gateway_tokens', coalesce(max(id), 0) FROM gateway_tokens;

CREATE TRIGGER cv_suppliers_i AFTER INSERT ON suppliers BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_suppliers_u AFTER UPDATE ON suppliers BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_suppliers_d AFTER DELETE ON suppliers BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_accounts_i AFTER INSERT ON provider_accounts BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_accounts_u AFTER UPDATE OF owner_supplier_id, provider, base_url, azure_deployment, azure_api_version,
    default_model, key_ref, enabled ON provider_accounts BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_accounts_d AFTER DELETE ON provider_accounts BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_tokens_i AFTER INSERT ON gateway_tokens BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_tokens_u AFTER UPDATE OF revoked_at ON gateway_tokens BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_tokens_d AFTER DELETE ON gateway_tokens BEGIN UPDATE catalog_version SET version = version + 1; END;
UPDATE catalog_version SET version = version + 1;
"#,
    // v10: idempotency keys (Stripe's semantics, see domain::idempotency and
    // engine::idempotency): one small record per (supplier, key) for 24 hours,
    // with the answer's bytes while they are kept (capped per answer and in
    // total, oldest dropped first). No foreign key: a record outlives its
    // supplier by at most a day, and table rebuilds of `suppliers` must not
    // cascade into it.
    IDEMPOTENCY_KEYS,
    // v11: scheduled migration starts (a running runtime starts each when due,
    // checking the 48 h wedding guard again then), and settings that belong to
    // the database (e.g. whether the console routes it).
    r#"
CREATE TABLE migration_schedules (
    id INTEGER PRIMARY KEY,
    supplier_id INTEGER NOT NULL REFERENCES suppliers(id) ON DELETE CASCADE,
    to_route TEXT NOT NULL,               -- JSON RouteTarget
    plan TEXT NOT NULL,                   -- JSON [PhasePlan]
    start_at TEXT NOT NULL,
    state TEXT NOT NULL,                  -- waiting, started, refused, cancelled
    migration_id INTEGER,
    reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX migration_schedules_due ON migration_schedules(state, start_at);
CREATE TABLE database_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"#,
    // v12 (issue 22): the usage journal's fold watermark, one row per journal
    // instance (the numbered folder under `<db>.journal`): every record of
    // that journal before (segment, byte_offset) is in usage_events. Moved
    // in the same transaction as the events it covers.
    r#"
CREATE TABLE usage_journal_watermark (
    journal INTEGER PRIMARY KEY,
    segment INTEGER NOT NULL,
    byte_offset INTEGER NOT NULL
);
"#,
    // v13: key pools (issue 27): a platform key's weight, its own requests
    // and tokens per minute, and its monthly budget, one optional row per
    // account (no foreign key: rebuilds of `provider_accounts` must not
    // cascade into it; the router reads rows of existing accounts only). A
    // change bumps the catalog version so the runtime adopts it.
    r#"
CREATE TABLE account_pool_settings (
    account_id INTEGER PRIMARY KEY,
    weight INTEGER CHECK (weight IS NULL OR weight BETWEEN 1 AND 1000),
    rpm INTEGER CHECK (rpm IS NULL OR rpm > 0),
    tpm INTEGER CHECK (tpm IS NULL OR tpm > 0),
    monthly_budget_micros INTEGER CHECK (monthly_budget_micros IS NULL OR monthly_budget_micros >= 0)
);
CREATE TRIGGER cv_pool_i AFTER INSERT ON account_pool_settings BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_pool_u AFTER UPDATE ON account_pool_settings BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_pool_d AFTER DELETE ON account_pool_settings BEGIN UPDATE catalog_version SET version = version + 1; END;
"#,
    // v14: incidents (engine::alerts): one account's trouble from its first
    // failure to its recovery, with every alert it causes; at most one open
    // incident per account. Alerts carry the incident they belong to.
    r#"
CREATE TABLE incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    resolved_at TEXT
);
CREATE UNIQUE INDEX incidents_one_open_per_account ON incidents(account_id) WHERE resolved_at IS NULL;
ALTER TABLE alerts ADD COLUMN incident_id INTEGER;
CREATE INDEX alerts_incident ON alerts(incident_id) WHERE incident_id IS NOT NULL;
"#,
    // v15: the request log's search for failures (store::requests): failed
    // and cancelled events by time. Partial, so a successful request's write
    // does not touch it (BENCHMARKS.md, "Request log").
    r#"
CREATE INDEX usage_events_failures_ts ON usage_events(ts) WHERE status IN (1, 2);
"#,
    // v16 (issue 26): the response cache's persistent part (engine::cache
    // holds a bounded LRU in memory in front of it): one row per exact-match
    // key (SHA-256 of supplier, endpoint, model and canonical body; the
    // supplier is kept too, and checked on every read), the answer's bytes
    // (a plain body, or a stream's SSE bytes) with what the original call
    // used and cost, its expiry, and its last use (eviction order under the
    // size cap). Purges are logged (`response_cache_purges`, bumping the
    // catalog version) so that every process serving the database drops
    // its memory entries too; removing a supplier purges its entries in the
    // same transaction. Per-supplier settings (on/off, TTLs) bump the
    // catalog version. A usage row's `saved_micros` is what a cache hit saved.
    r#"
CREATE TABLE response_cache (
    key BLOB PRIMARY KEY,
    supplier_id INTEGER NOT NULL,
    endpoint INTEGER NOT NULL,       -- domain::idempotency::Endpoint code
    stream INTEGER NOT NULL,         -- 1: the body is a stream's SSE bytes
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    account_id INTEGER,
    usage TEXT NOT NULL,             -- JSON TokenUsage of the original call
    cost_micros INTEGER NOT NULL,    -- what the original call cost
    body BLOB NOT NULL,
    body_len INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    used_ms INTEGER NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX response_cache_supplier ON response_cache(supplier_id);
CREATE INDEX response_cache_expires ON response_cache(expires_ms);
CREATE INDEX response_cache_used ON response_cache(used_ms);
CREATE TABLE response_cache_purges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    supplier_id INTEGER,             -- NULL: the whole cache
    ts_ms INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE TRIGGER cv_cache_purge AFTER INSERT ON response_cache_purges BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TABLE supplier_cache_settings (
    supplier_id INTEGER PRIMARY KEY,
    enabled INTEGER NOT NULL,
    chat_ttl_secs INTEGER NOT NULL CHECK (chat_ttl_secs > 0),
    embeddings_ttl_secs INTEGER NOT NULL CHECK (embeddings_ttl_secs > 0)
);
CREATE TRIGGER cv_cache_settings_i AFTER INSERT ON supplier_cache_settings BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_cache_settings_u AFTER UPDATE ON supplier_cache_settings BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER cv_cache_settings_d AFTER DELETE ON supplier_cache_settings BEGIN UPDATE catalog_version SET version = version + 1; END;
CREATE TRIGGER response_cache_supplier_removed AFTER DELETE ON suppliers BEGIN
    DELETE FROM response_cache WHERE supplier_id = old.id;
    DELETE FROM supplier_cache_settings WHERE supplier_id = old.id;
    INSERT INTO response_cache_purges (supplier_id, ts_ms, reason)
        VALUES (old.id, CAST(strftime('%s', 'now') AS INTEGER) * 1000, 'supplier removed');
END;
ALTER TABLE usage_events ADD COLUMN saved_micros INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_daily ADD COLUMN saved_micros INTEGER NOT NULL DEFAULT 0;
"#,
];

/// Schema v10's `idempotency_keys`. Since the records moved to a file of
/// their own (`store::idempotency`), that file is created with this same
/// text, and the main file's table stays, empty.
pub const IDEMPOTENCY_KEYS: &str = r#"
CREATE TABLE idempotency_keys (
    supplier_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    endpoint INTEGER NOT NULL,          -- 0 chat completions, 1 embeddings
    fingerprint BLOB NOT NULL,          -- SHA-256 of the request body
    state INTEGER NOT NULL,             -- 0 in flight, 1 completed, 2 failed
    status INTEGER,                     -- the answer's HTTP status
    request_id TEXT,
    headers TEXT NOT NULL DEFAULT '[]', -- JSON [[name, value], ...] replayed with the body
    body BLOB,                          -- the answer's bytes while kept
    body_state INTEGER NOT NULL DEFAULT 0, -- 0 none, 1 kept, 2 too large, 3 evicted
    body_len INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    lease_until_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    completed_ms INTEGER,
    PRIMARY KEY (supplier_id, key)
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys(expires_ms);
CREATE INDEX idempotency_keys_bodies ON idempotency_keys(completed_ms) WHERE body IS NOT NULL;
"#;

pub const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;
