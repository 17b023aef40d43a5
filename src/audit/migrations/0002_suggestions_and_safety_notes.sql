-- The engine records the alternatives it suggested and the safety notes shown on the card.
-- JSON arrays, as the other list columns.
ALTER TABLE audit_orders ADD COLUMN suggestions TEXT NOT NULL DEFAULT '[]';
ALTER TABLE audit_orders ADD COLUMN safety_notes TEXT NOT NULL DEFAULT '[]';
