-- JWT `jti`s already accepted, shared by every replica using this PostgreSQL store (issue 10):
-- a token replayed on any replica is refused. An entry may be forgotten after `expires_at`
-- (Unix seconds: the token's `exp` plus the clock skew); expired rows are purged by the service.
-- Created on SQLite too (one schema text for both back ends) but unused there: with SQLite the
-- cache is in process memory and the service runs as a single instance.
CREATE TABLE auth_jti_seen (
    iss TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (iss, jti)
);
CREATE INDEX auth_jti_seen_expires ON auth_jti_seen (expires_at);
