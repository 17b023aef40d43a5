-- Feedback truth (issue 9): for an `accepted` entry, whether every accepted suggestion id was
-- issued on that card (1), or not (0: an id the service never issued on it, or the card is not
-- in this store yet). NULL for `overridden` entries and for entries stored before this check.
-- Recomputed whenever the card's evaluation or the entry is stored (spool replay order does not
-- matter).
ALTER TABLE audit_feedback ADD COLUMN suggestion_known BIGINT;
