#!/usr/bin/env bash
# Charging (sql/014_charged.sql, docs/budgets-yaml.md "Charging"): usage recorded as aifd
# records it (aif.record_usage(), with what slurmctld allocated) is charged at each GPU model's
# rate, raised to the node share of CPUs and memory, or by Slurm's billing; an unknown model and
# an unknown allocation at the unrated rate; MIG profiles are models; a rate changed while a job
# runs does not change its charge; budget_status counts charged hours and says the physical
# ones; usage_daily and usage_by_model give both; the rollups stay exact (rollup_verify); a
# reservation charges each GPU at the cluster's highest rate, or as the allocation is charged,
# and covers a later admission only at a rate at least that one's; a job held at its start is
# released at the rate its admission charged it.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/sql_common.sh"
load_harness
sql_setup charge "${1:?usage: sql_charge.sh AIF_MIGRATE}"

config() { # config H100_RATE: ai2f on jean-zay (rates, node share) and adastra (billing)
	cat <<EOF
BEGIN;
SELECT aif.begin_staging();
INSERT INTO pg_temp.stage_sectors VALUES ('health');
INSERT INTO pg_temp.stage_periods VALUES
	('cur', (now() AT TIME ZONE 'UTC')::date - 30, (now() AT TIME ZONE 'UTC')::date + 30);
INSERT INTO pg_temp.stage_factories VALUES ('ai2f', NULL, 'deny', 0, '{80,95}', false);
INSERT INTO pg_temp.stage_factory_clusters VALUES
	('ai2f', 'jean-zay', 'gpus', $1, 16, 65536), ('ai2f', 'adastra', 'billing', 1, NULL, NULL);
INSERT INTO pg_temp.stage_gpu_rates VALUES ('ai2f', 'jean-zay', 'h100', $1),
	('ai2f', 'jean-zay', 'a100', 2), ('ai2f', 'jean-zay', '1g.10gb', 0.25);
INSERT INTO pg_temp.stage_factory_budgets VALUES ('ai2f', 'cur', 1000);
INSERT INTO pg_temp.stage_projects VALUES ('p1', 'ai2f', NULL, 'deny', 0, '{}');
INSERT INTO pg_temp.stage_project_sectors VALUES ('p1', 'health', 0);
INSERT INTO pg_temp.stage_project_budgets VALUES ('p1', 'cur', 500);
SELECT count(*) FROM aif.apply('charge.yaml', sha256('charge'), 'test');
COMMIT;
EOF
}
config 4 | q >/dev/null

# record ROWS: aif.record_usage() of the rows "(order, is_end, cluster, job, node, gpus)" as
# aifd writes them: exact and final, project p1, uid 1000, each interval the hour around
# yesterday's midnight (UTC), so that the views always split it between two days.
record() {
	q -c "WITH v(o, e, c, j, n, g) AS (VALUES $1),
	t AS (SELECT extract(epoch FROM date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')::bigint
		- 86400 + 1800 AS end_at)
	SELECT aif.record_usage(array_agg(e ORDER BY o), array_agg(c ORDER BY o), array_agg(j::bigint ORDER BY o),
		array_agg(n ORDER BY o), array_agg(0::bigint ORDER BY o), array_agg('p1'::text ORDER BY o),
		array_agg('health'::text ORDER BY o), array_agg(1000::bigint ORDER BY o),
		array_agg('alice'::text ORDER BY o), array_agg(g::bigint ORDER BY o),
		array_agg(t.end_at - 3600 ORDER BY o), array_agg(CASE WHEN e THEN t.end_at END ORDER BY o),
		array_agg(e ORDER BY o), array_agg(true ORDER BY o), array_agg(NULL::text ORDER BY o),
		interval '300 seconds')
	FROM v, t" >/dev/null
}
# allocate ROWS: aif.record_allocations() of "(cluster, job, node, gpu_models, job_cpus,
# job_memory_mb, job_billing, job_nodes)" for run 0 of uid 1000; prints the intervals changed
# and the models charged at the unrated rate of a cluster that has rates.
allocate() {
	q -F ' ' -c "SELECT r.changed, r.unrated
	FROM (SELECT array_agg(c) AS c, array_agg(j::bigint) AS j, array_agg(n) AS n, array_agg(gm::text) AS gm,
		     array_agg(jc::bigint) AS jc, array_agg(jm::bigint) AS jm, array_agg(jb::bigint) AS jb,
		     array_agg(jn::bigint) AS jn, array_agg(0::bigint) AS restarts, array_agg(1000::bigint) AS uids
	      FROM (VALUES $1) v(c, j, n, gm, jc, jm, jb, jn)) a,
	     aif.record_allocations(a.c, a.j, a.n, a.restarts, a.uids, a.gm, a.jc, a.jm, a.jb, a.jn) r"
}
starts="(1, false, 'jean-zay', 1, 'n1', 2), (2, false, 'jean-zay', 2, 'n1', 2),
	(3, false, 'jean-zay', 2, 'n2', 2), (4, false, 'jean-zay', 3, 'n1', 1),
	(5, false, 'jean-zay', 4, 'n1', 1), (6, false, 'jean-zay', 5, 'n3', 2),
	(7, false, 'jean-zay', 6, 'n1', 2), (8, false, 'jean-zay', 7, 'n4', 3),
	(9, false, 'jean-zay', 8, 'n4', 1), (10, false, 'adastra', 9, 'a1', 8),
	(11, false, 'adastra', 9, 'a2', 8), (12, false, 'jean-zay', 10, 'n5', 0)"
record "$starts"
assert_eq 8 "$(q -c "SELECT trim_scale(coalesce(charged_gpus, gpus)) FROM aif.usage_intervals WHERE job_id = 1")" \
	"a new interval: its GPUs at the unrated rate (the highest, 4) until its allocation is known"
assert_eq "12 {jean-zay/(untyped),jean-zay/gh200}" "$(allocate "('jean-zay', 1, 'n1', 'h100:2', 8, 16384, 2, 1),
	('jean-zay', 2, 'n1', 'h100:2', 64, 65536, 8, 2), ('jean-zay', 2, 'n2', 'a100:2', 64, 65536, 8, 2),
	('jean-zay', 3, 'n1', 'h100:1', 64, 16384, 4, 1), ('jean-zay', 4, 'n1', 'h100:1', 4, 200000, 4, 1),
	('jean-zay', 5, 'n3', NULL, NULL, NULL, NULL, NULL),
	('jean-zay', 6, 'n1', ':2', 2, NULL, 2, 1), ('jean-zay', 7, 'n4', '1g.10gb:3', 3, 3072, 3, 1),
	('jean-zay', 8, 'n4', 'gh200:1', 1, 1024, NULL, 1),
	('adastra', 9, 'a1', 'mi250x:8', 128, 262144, 10, 2), ('adastra', 9, 'a2', 'mi250x:8', 128, 262144, 10, 2),
	('jean-zay', 10, 'n5', '', 32, 16384, 1, 1), ('jean-zay', 99, 'n1', 'h100:1', 1, 1, 1, 1)")" \
	"allocations recorded (job 99 has no interval), and the models without a rate"
assert_eq "0 {}" "$(allocate "('jean-zay', 1, 'n1', 'h100:4', 8, 16384, 2, 1)")" "an allocation is taken once"
record "${starts//false/true}"
assert_eq 0 "$(q -c "SELECT count(*) FROM aif.usage_intervals WHERE ended_at IS NULL")" "all closed"

# Per interval: GPUs, models, node share, charged GPUs.
assert_eq "1 n1 2 h100:2 8 16384 8
2 n1 2 h100:2 32 32768 8
2 n2 2 a100:2 32 32768 4
3 n1 1 h100:1 64 16384 16
4 n1 1 h100:1 4 200000 16
5 n3 2 - - - 8
6 n1 2 :2 2 - 8
7 n4 3 1g.10gb:3 3 3072 0.75
8 n4 1 gh200:1 1 1024 4
9 a1 8 mi250x:8 64 131072 5
9 a2 8 mi250x:8 64 131072 5
10 n5 0  32 16384 8" "$(q -F ' ' -c "SELECT job_id, node, gpus, coalesce(gpu_models, '-'), coalesce(cpus::text, '-'),
		coalesce(memory_mb::text, '-'), trim_scale(coalesce(charged_gpus, gpus))
	FROM aif.usage_intervals ORDER BY job_id, node")" "charged GPUs per interval"
# (job 1: 2 h100 at 4, 8 CPUs within 2 GPUs' share; job 2: per node 32 CPUs = 2 GPUs' share;
# job 3: 64 CPUs = 4 GPUs' share on 1 h100: 3 more at 4; job 4: 200000 MiB = 4 GPUs' share
# (ceil(200000 / 65536)); job 5: no allocation known, 2 GPUs at the unrated rate (the highest,
# 4); job 6: untyped GPUs, unrated; job 7: MIG slices at 0.25; job 8: a model without a rate,
# unrated; job 9: billing 10 over 2 nodes; job 10: no GPU, 32 CPUs = 2 GPUs' share at the
# unrated rate. Job 6's memory and job 8's billing: the job's TRES had none.)

# budget_status: charged hours (every interval lasts an hour), and the physical hours.
assert_eq "ai2f - 1000 90.75 909.25 9.08 ok 32
ai2f p1 500 90.75 409.25 18.15 ok 32" "$(q -F ' ' -c "SELECT factory, coalesce(project, '-'), budget_gpu_hours,
		used_gpu_hours, remaining_gpu_hours, pct_used, state, used_physical_gpu_hours
	FROM aif_report.budget_status WHERE period = 'cur'")" "budget_status in charged hours"
assert_eq "90.75 32" "$(q -F ' ' -c "SELECT trim_scale(sum(charged_hours)), trim_scale(sum(gpu_hours)) FROM aif_report.usage_daily")" \
	"usage_daily: charged and physical hours"
assert_eq 2 "$(q -c "SELECT count(DISTINCT day) FROM aif_report.usage_daily")" "usage_daily: the hour split at midnight"
by_model() {
	q -F ' ' -c "SELECT model, trim_scale(sum(gpu_hours)), trim_scale(sum(charged_hours)) FROM aif_report.usage_by_model
		GROUP BY model ORDER BY model"
}
expected_models="(none) 0 8
(unknown) 2 8
(untyped) 2 8
1g.10gb 3 0.75
a100 2 4
gh200 1 4
h100 6 48
mi250x 16 10"
assert_eq "$expected_models" "$(by_model)" "usage_by_model, pending"
assert_eq 12 "$(q -c 'SELECT aif.rollup_flush()')" "flush"
assert_eq "$expected_models" "$(by_model)" "usage_by_model, folded"
# Per calendar month, as usage_monthly: the same months and, over the models, the same hours.
per_month() { # per_month VIEW: month, physical and charged hours, over clusters and models
	q -F ' ' -c "SELECT month, trim_scale(sum(gpu_hours)), trim_scale(sum(charged_hours)) FROM aif_report.$1
		GROUP BY month ORDER BY month"
}
assert_eq "$(per_month usage_monthly)" "$(per_month usage_by_model)" "usage_by_model's months are usage_monthly's"
assert_eq "" "$(q -c 'SELECT * FROM aif.rollup_verify()')" "rollup_verify"
assert_eq "ai2f p1 500 90.75" "$(q -F ' ' -c "SELECT factory, project, budget_gpu_hours, used_gpu_hours
	FROM aif_report.budget_status WHERE period = 'cur' AND project = 'p1'")" "budget_status, folded"

# A rate changed while a job runs applies from then on: job 11, open under h100 at 4, keeps 4
# when its allocation is learnt after the change to 6; job 12, opened after it, is charged 6.
record "(1, false, 'jean-zay', 11, 'n6', 1)"
config 6 | q >/dev/null
record "(1, false, 'jean-zay', 12, 'n7', 1)"
allocate "('jean-zay', 11, 'n6', 'h100:1', 1, 1024, 1, 1), ('jean-zay', 12, 'n7', 'h100:1', 1, 1024, 1, 1)" >/dev/null
assert_eq "11 4
12 6" "$(q -F ' ' -c "SELECT job_id, trim_scale(coalesce(charged_gpus, gpus)) FROM aif.usage_intervals WHERE job_id > 10
	ORDER BY 1")" "a rate change applies from then on"
assert_eq "2" "$(q -c "SELECT count(*) FROM aif.charging_versions WHERE cluster = 'jean-zay'")" \
	"the change is a new charging version"
assert_eq "change gpu-rate ai2f/jean-zay/h100 rate 4 -> 6" "$(q -F ' ' -c "SELECT r->>'action', r->>'object',
	r->>'id', r->>'detail' FROM aif.apply_log, jsonb_array_elements(summary->'rows') r
	WHERE id = (SELECT max(id) FROM aif.apply_log) AND r->>'object' = 'gpu-rate'")" "the audit log shows it"

# A reservation charges each GPU at the cluster's highest rate (h100, 6 now): 2 GPUs for 1 h.
assert_eq "t 43200000000" "$(q -F ' ' -c "SELECT fits, cost_us FROM aif.reserve('jean-zay', 20, 'p1', 2,
	now(), now() + interval '1 hour', false)")" "reservation at the highest rate"
assert_eq "12" "$(q -c "SELECT trim_scale(charged) FROM aif.reservations WHERE job_id = 20")" "reserved charged GPUs"
# With slurmctld's allocation (the running job's models per node, its CPUs, memory, billing),
# each node is reserved as its usage will be charged: 2 a100 at 2; 2 h100 at 6, three times
# that; a node of each with 64 CPUs (32 a node: 2 GPUs' share at 16 CPUs each), each node
# raised to 2 GPUs at its rate.
reserve_alloc() { # reserve_alloc JOB GPUS MODELS CPUS: charged GPUs reserved for an hour
	q -c "SELECT fits FROM aif.reserve('jean-zay', $1, 'p1', $2, now(), now() + interval '1 hour',
		true, '$3', $4, 2048, NULL, restarts => 0)" >/dev/null
	q -c "SELECT trim_scale(charged) FROM aif.reservations WHERE job_id = $1"
}
assert_eq 4 "$(reserve_alloc 21 2 '{a100:2}' 8)" "reserved: 2 a100"
assert_eq 12 "$(reserve_alloc 22 2 '{h100:2}' 8)" "reserved: 2 h100, three times 2 a100"
assert_eq 16 "$(reserve_alloc 23 2 '{h100:1,a100:1}' 64)" "reserved: per node, with its CPU share"
assert_eq 12 "$(reserve_alloc 24 2 '{""}' 8)" "reserved: models short of the job's GPUs, at the highest rate"
# Another admission of the same run (another node's, a step's: the same restart count) keeps
# the run's reservation whatever the rates since: job 23's 16, though 128 CPUs would be 32 now.
assert_eq "t|16" "$(q -c "SELECT r.fits FROM aif.reservations x, LATERAL aif.reserve('jean-zay', 23, 'p1', 2,
	x.starts_at, x.ends_at, true, '{h100:1,a100:1}', 128, 2048, NULL, restarts => 0) r WHERE x.job_id = 23" \
	-c "SELECT trim_scale(charged) FROM aif.reservations WHERE job_id = 23" | paste -sd'|')" \
	"job 23's run admitted again: its reservation kept"
# A job held at its start is released at the rate its admission charged it (aif.waiting.charged),
# not each GPU at the highest (12), while its cluster's charging is the version it was computed
# under: job 25 at 480 an hour waits (more than p1 has left, within its 500), 26 at 16 is
# reserved 16; 27's 16 is of a charging version replaced since, and 28 was held while pending
# (no charge known): both at the highest rate. Job 29 at 600 can no longer fit p1's 500 at all:
# released unreserved, for its admission to refuse and say why.
q -c "INSERT INTO aif.waiting (cluster, job_id, project_id, gpus, seconds, charged, charging_version)
	SELECT 'jean-zay', j, 'p1', 2, 3600, c, CASE WHEN j = 27 THEN (SELECT min(id) FROM aif.charging_versions
		WHERE cluster = 'jean-zay') ELSE aif.charging_version('p1', 'jean-zay') END
	FROM (VALUES (25, 480), (26, 16), (27, 16), (28, NULL), (29, 600)) v(j, c)" >/dev/null
assert_eq "26 t,27 t,28 t,29 f" "$(q -F ' ' -c "SELECT string_agg(job_id || ' ' || CASE WHEN reserved THEN 't' ELSE 'f' END, ',' ORDER BY job_id)
	FROM aif.waiting_release('jean-zay')")" "the waiting jobs released, and whether reserved"
assert_eq "26 16
27 12
28 12" "$(q -F ' ' -c "SELECT job_id, trim_scale(charged) FROM aif.reservations WHERE job_id BETWEEN 25 AND 29
	ORDER BY 1")" "released jobs reserved at their admission's rate, else the highest"
# Its admission, when it starts a minute later with a lower time limit (within the span
# reserved) on dearer nodes (128 CPUs: 32), replaces job 26's reservation; job 28's, on cheaper
# nodes (2 a100: 4), keeps its 12.
assert_eq "t 32" "$(q -F ' ' -c "SELECT r.fits, trim_scale(r.charged) FROM aif.reservations x,
	LATERAL aif.reserve('jean-zay', 26, 'p1', 2, x.starts_at + interval '1 minute', x.ends_at, true,
	'{h100:1,a100:1}', 128, 2048, NULL, restarts => 0) r WHERE x.job_id = 26")" "job 26's admission on dearer nodes"
assert_eq 32 "$(q -c "SELECT trim_scale(charged) FROM aif.reservations WHERE job_id = 26")" \
	"job 26's admission on dearer nodes: reserved at its rate"
assert_eq "t 4" "$(q -F ' ' -c "SELECT r.fits, trim_scale(r.charged) FROM aif.reservations x,
	LATERAL aif.reserve('jean-zay', 28, 'p1', 2, x.starts_at + interval '1 minute', x.ends_at, true,
	'{a100:2}', 8, 2048, NULL, restarts => 0) r WHERE x.job_id = 28")" "job 28's admission on cheaper nodes"
assert_eq 12 "$(q -c "SELECT trim_scale(charged) FROM aif.reservations WHERE job_id = 28")" \
	"job 28's admission on cheaper nodes: its release's reservation kept"
# One whose nodes' models are not known is charged each GPU at the highest rate (12): more than
# job 30's release reserved (4), so it is replaced.
q -c "INSERT INTO aif.waiting (cluster, job_id, project_id, gpus, seconds, charged, charging_version)
	VALUES ('jean-zay', 30, 'p1', 2, 3600, 4, aif.charging_version('p1', 'jean-zay'))" >/dev/null
assert_eq "30 t" "$(q -F ' ' -c "SELECT job_id, reserved FROM aif.waiting_release('jean-zay')")" "job 30 released"
assert_eq "t 12" "$(q -F ' ' -c "SELECT r.fits, trim_scale(r.charged) FROM aif.reservations x,
	LATERAL aif.reserve('jean-zay', 30, 'p1', 2, x.starts_at + interval '1 minute', x.ends_at, true,
			    restarts => 0) r
	WHERE x.job_id = 30")" "job 30's admission, its nodes not known"
assert_eq 12 "$(q -c "SELECT trim_scale(charged) FROM aif.reservations WHERE job_id = 30")" \
	"job 30's admission, its nodes not known: reserved at the highest rate"

# A node charged as its GPUs (here: on a cluster its factory does not list, one unit per
# GPU-hour) stores no charge (NULL, aif.charged_gpus_stored()), so that the sums over it stay in
# integers; the views charge it its GPUs, in both the rollups and the pending usage.
record "(1, false, 'elsewhere', 30, 'x1', 3)"
assert_eq "3|" "$(q -c "SELECT gpus, charged_gpus FROM aif.usage_intervals WHERE job_id = 30")" \
	"an interval charged as its GPUs stores NULL"
same_hours() { # same_hours: whether usage_daily charges cluster elsewhere as many hours as it used
	q -F ' ' -c "SELECT sum(charged_hours) = sum(gpu_hours) AND sum(gpu_hours) > 0 FROM aif_report.usage_daily
		WHERE cluster = 'elsewhere'"
}
assert_eq t "$(same_hours)" "pending: usage_daily charges it its GPUs"
record "(1, true, 'elsewhere', 30, 'x1', 3)"
q -c "SELECT aif.rollup_flush(true)" >/dev/null
assert_eq "3|" "$(q -c "SELECT gpus, charged_gpus FROM aif.usage_intervals WHERE job_id = 30")" \
	"closed, still NULL"
assert_eq t "$(same_hours)" "folded: usage_daily charges it its GPUs"
assert_eq "" "$(q -c 'SELECT * FROM aif.rollup_verify()')" "rollup_verify"

# The rollup by model, folded in one batch of every kind of node: nodes of one model (101, and
# 107 across midnight), of two models in one job (102), a node of two models (103, split by its
# GPUs), no model known beside a model (104) and beside a node without GPUs (105), an empty
# model list (106). In March 2025, an hour per node: each model's GPU- and charged hours, and
# rollup_verify.
q -c "INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id, sector_id,
	uid, user_name, gpus, gpu_models, charged_gpus, started_at, ended_at, end_source)
SELECT 'kinds', j, n, 0, 'p1', 'health', 1000, 'u', g, m, c, s, s + interval '1 hour', 'epilog'
FROM (VALUES (101, 'a', 2, 'h100:2', 8, timestamptz '2025-03-10 10:00Z'),
	     (101, 'b', 2, 'h100:2', 9.5, '2025-03-10 10:00Z'),
	     (102, 'a', 1, 'h100:1', 4, '2025-03-10 10:00Z'), (102, 'b', 2, 'a100:2', 4, '2025-03-10 10:00Z'),
	     (103, 'a', 2, 'h100:1,a100:1', 6, '2025-03-10 10:00Z'),
	     (104, 'a', 2, NULL, NULL, '2025-03-10 10:00Z'), (104, 'b', 2, 'h100:2', 8, '2025-03-10 10:00Z'),
	     (105, 'a', 2, NULL, NULL, '2025-03-10 10:00Z'), (105, 'b', 0, NULL, 1, '2025-03-10 10:00Z'),
	     (106, 'a', 0, '', NULL, '2025-03-10 10:00Z'),
	     (107, 'a', 2, 'h100:2', 8, '2025-03-10 23:30Z')) v(j, n, g, m, c, s)" >/dev/null
assert_eq 11 "$(q -c "SELECT aif.rollup_flush(true)")" "the kinds of slices: flushed"
assert_eq "(none) 0 1
(unknown) 4 4
a100 3 7
h100 10 40.5" "$(q -F ' ' -c "SELECT model, trim_scale(sum(gpu_hours)), trim_scale(sum(charged_hours))
	FROM aif_report.usage_by_model WHERE cluster = 'kinds' GROUP BY model ORDER BY model")" \
	"the kinds of slices: GPU- and charged hours by model"
assert_eq "" "$(q -c 'SELECT * FROM aif.rollup_verify()')" "the kinds of slices: rollup_verify"

echo "sql charge: ok"
