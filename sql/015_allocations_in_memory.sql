-- 015_allocations_in_memory: aifd learns which intervals to ask slurmctld about from the starts
-- its writer commits, in memory (daemon/usage/allocations.c), not from a partial index that
-- every start entered and every answer left. What an aifd left unasked when it stopped, the
-- next reads once at start from the open intervals.
DROP INDEX IF EXISTS aif.usage_intervals_unallocated;
COMMENT ON COLUMN aif.usage_intervals.allocation_at IS
	'when aifd recorded what slurmctld allocated to the running job (aif.record_allocations()); NULL: not known';

INSERT INTO aif.schema_migrations (version, name) VALUES (15, '015_allocations_in_memory') ON CONFLICT DO NOTHING;
