-- Issue 12: hookInstance values are random (a uuid chosen by the EHR), so every hook call put
-- its entry on a random leaf page of this index, and every group commit wrote one such page
-- per call to the WAL and copied it again at the next checkpoint. Dropping it cut the audit writer's CPU per call from 72 to
-- 46 µs (BENCHMARKS.md). The cost: the audit API's `hook_instance` filter scans the calls in the
-- requested time range (`from`/`to` use audit_calls_received); without a range it scans the
-- table. Looking one call up by hookInstance is rare (tracing a single call); every per-request
-- commit paid for the index.
DROP INDEX audit_calls_hook_instance;
