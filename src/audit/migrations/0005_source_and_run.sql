-- Where a record comes from: `live` (a hook call) or `batch` (`vcf-cds batch-audit --store`),
-- and for batch records the id of the run that stored them.
ALTER TABLE audit_calls ADD COLUMN source TEXT NOT NULL DEFAULT 'live';
ALTER TABLE audit_calls ADD COLUMN run_id TEXT;
ALTER TABLE audit_orders ADD COLUMN source TEXT NOT NULL DEFAULT 'live';
ALTER TABLE audit_orders ADD COLUMN run_id TEXT;
CREATE INDEX audit_orders_source ON audit_orders (source);
