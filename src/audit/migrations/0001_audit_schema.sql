-- Audit trail schema, identical text for SQLite and PostgreSQL (portable types only:
-- TEXT, BIGINT, DOUBLE PRECISION; times are Unix epoch milliseconds, UTC).

-- One row per hook call (also for calls with no draft order).
CREATE TABLE audit_calls (
    call_id TEXT NOT NULL PRIMARY KEY,
    received_at_ms BIGINT NOT NULL,
    service_id TEXT NOT NULL,
    hook TEXT NOT NULL,
    hook_instance TEXT NOT NULL,
    user_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    encounter_id TEXT,
    fhir_server TEXT,
    knowledge_version TEXT NOT NULL,
    guideline_id TEXT NOT NULL,
    latency_ms DOUBLE PRECISION NOT NULL,
    order_count BIGINT NOT NULL,
    pseudonymized BIGINT NOT NULL,
    delivery TEXT NOT NULL,
    stored_at_ms BIGINT NOT NULL
);
CREATE INDEX audit_calls_received ON audit_calls (received_at_ms);
CREATE INDEX audit_calls_hook_instance ON audit_calls (hook_instance);

-- One row per draft order of a call. Call fields used for filtering are repeated here.
CREATE TABLE audit_orders (
    call_id TEXT NOT NULL,
    order_index BIGINT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    service_id TEXT NOT NULL,
    hook TEXT NOT NULL,
    hook_instance TEXT NOT NULL,
    user_id TEXT NOT NULL,
    order_ref TEXT NOT NULL,
    order_codes TEXT NOT NULL,
    selected BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    procedure_id TEXT,
    procedure_name TEXT,
    region TEXT,
    contrast TEXT,
    matched_code TEXT,
    candidate_variants TEXT NOT NULL,
    chosen_variant TEXT,
    rating BIGINT,
    category TEXT,
    evidence TEXT,
    pama_rating TEXT,
    consult_id TEXT,
    assumptions TEXT NOT NULL,
    deciding_facts TEXT NOT NULL,
    card_uuid TEXT,
    suggestion_uuids TEXT NOT NULL,
    PRIMARY KEY (call_id, order_index)
);
CREATE INDEX audit_orders_received ON audit_orders (received_at_ms);
CREATE INDEX audit_orders_card ON audit_orders (card_uuid);
CREATE INDEX audit_orders_user ON audit_orders (user_id);
CREATE INDEX audit_orders_variant ON audit_orders (chosen_variant);

-- One row per distinct feedback entry (feedback_id = SHA-256 of the canonical entry).
CREATE TABLE audit_feedback (
    feedback_id TEXT NOT NULL PRIMARY KEY,
    received_at_ms BIGINT NOT NULL,
    service_id TEXT NOT NULL,
    card_uuid TEXT NOT NULL,
    outcome TEXT NOT NULL,
    outcome_at_ms BIGINT NOT NULL,
    accepted_suggestions TEXT NOT NULL,
    accepted_count BIGINT NOT NULL,
    override_system TEXT,
    override_code TEXT,
    override_display TEXT,
    user_comment TEXT,
    delivery TEXT NOT NULL,
    stored_at_ms BIGINT NOT NULL
);
CREATE INDEX audit_feedback_card ON audit_feedback (card_uuid);
CREATE INDEX audit_feedback_received ON audit_feedback (received_at_ms);
