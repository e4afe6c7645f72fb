#!/usr/bin/env bash
# Reservations (sql/012_reservations.sql, sql/repeatable/35_reserve.sql): aif.reserve() admits a
# job only when its GPUs over its time limit fit what the project and its factory have left in
# every period the span reaches (closed usage, queued or folded, and the other reservations),
# refusing with the figures of the budget that decided; a job reserved already fits again; a
# period without a factory budget has none left; closing the run's last interval releases the
# reservation in the same transaction that queues its usage (not an earlier run's late end: not
# a later run's); two sessions reserving against one factory take turns, so
# that the second sees the first's reservation; the budget_status view shows what is reserved;
# a run's close and its admission at once leave no reservation; a waiting job is forgotten only
# as listed; a reservation nothing released expires an hour past its span; the plan shows
# admission; aif.waiting_release() tries every project's waiting jobs, more than a pass takes
# in turns, each project's oldest before anyone's second; aif.reserve_trial() answers as
# aif.reserve() and reserves nothing; a running run's reservation follows slurmctld's end of
# the run, and a requeued job's run takes over the reservation it was admitted on (its last
# run's, or a release's).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/sql_common.sh"
load_harness
sql_setup reserve "${1:?usage: sql_reserve.sh AIF_MIGRATE}"
SQL_WORK=$(mktemp -d)

# Factory f (10 GPU-hours in cur, none in next) reserves; project p has 4 of them, q none of
# its own. cur ends at the next UTC midnight + 2 days, next follows it.
cur_end=$(date -u -d "@$(($(date +%s) + 2 * 86400))" +%F)
next_end=$(date -u -d "@$(($(date +%s) + 40 * 86400))" +%F)
# apply_f NAME [MORE]: that configuration applied as file NAME, with the projects of the SQL
# text[] MORE too (no budget of their own).
apply_f() {
	q <<SQL >/dev/null
BEGIN;
SELECT aif.begin_staging();
INSERT INTO stage_sectors VALUES ('s1');
INSERT INTO stage_periods VALUES ('cur', (now() AT TIME ZONE 'UTC')::date - 10, '$cur_end'),
	('next', '$cur_end', '$next_end');
INSERT INTO stage_factories (id, name, on_exhausted, grace_seconds, warn_at, allow_overcommit, admission)
	VALUES ('f', NULL, 'deny', 0, '{}', false, 'reserve');
INSERT INTO stage_factory_clusters VALUES ('f', 'c1');
INSERT INTO stage_factory_budgets VALUES ('f', 'cur', 10);
INSERT INTO stage_projects (id, factory_id, name, on_exhausted, grace_seconds, warn_at, admission)
	SELECT id, 'f', NULL, 'deny', 0, '{}', 'reserve' FROM unnest(ARRAY['p', 'q'] || ${2:-'{}'}::text[]) id;
INSERT INTO stage_project_sectors SELECT id, 's1', 0 FROM stage_projects;
INSERT INTO stage_project_budgets VALUES ('p', 'cur', 4);
SELECT count(*) FROM aif.apply('$1', sha256('$1'), 'test');
COMMIT;
SQL
}
apply_f reserve.yaml
assert_eq "reserve reserve" "$(q -c "SELECT admission FROM aif.factories" -c "SELECT DISTINCT admission FROM aif.projects" | paste -sd' ')" \
	"the factory's and projects' admission"

now=$(date +%s)
# reserve JOB PROJECT GPUS SECONDS [START]: aif.reserve()'s answer, one line
reserve() {
	q -F ' ' -c "SELECT fits, period_id, scope, owner, budget_us, committed_us, cost_us
		FROM aif.reserve('c1', $1, '$2', $3, to_timestamp(${5:-$now}), to_timestamp(${5:-$now} + $4), true)"
}
H=3600000000 # GPU-microseconds in a GPU-hour

# p: 2 GPUs x 1 h fits its 4 (2 left: the least room is p's, after this job).
assert_eq "t cur project p $((4 * H)) $((2 * H)) $((2 * H))" "$(reserve 1 p 2 3600)" "2 GPU-hours for p"
# again (another node's admission of job 1): fits, nothing more reserved
assert_eq "t" "$(reserve 1 p 2 3600 | cut -d' ' -f1)" "job 1 again"
assert_eq 1 "$(q -c "SELECT count(*) FROM aif.reservations")" "reservations after job 1 twice"
# 3 GPUs x 1 h does not fit p's 2 left: refused with p's figures, nothing reserved
assert_eq "f cur project p $((4 * H)) $((2 * H)) $((3 * H))" "$(reserve 2 p 3 3600)" "3 GPU-hours for p"
# q has no budget of its own: the factory's 10 - 2 reserved by p = 8
assert_eq "f cur factory f $((10 * H)) $((2 * H)) $((9 * H))" "$(reserve 3 q 9 3600)" "9 GPU-hours for q"
assert_eq "t cur factory f $((10 * H)) $((10 * H)) $((8 * H))" "$(reserve 3 q 8 3600)" "8 GPU-hours for q"
assert_eq "f" "$(reserve 4 q 1 60 | cut -d' ' -f1)" "1 GPU-minute, the factory full"

# Closed usage counts: the release of job 3 (8 GPU-hours reserved) when its only interval
# closes, with 1 GPU-hour used; then 1 + 2 (job 1) of 10 are committed.
q -c "INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id, sector_id,
	uid, user_name, gpus, started_at, ended_at, end_source, exact)
	VALUES ('c1', 3, 'n1', 0, 'q', 's1', 1000, 'u', 8, to_timestamp($now), NULL, NULL, false)" >/dev/null
assert_eq 2 "$(q -c "SELECT count(*) FROM aif.reservations")" "reservations while job 3 runs"
q -c "UPDATE aif.usage_intervals SET ended_at = to_timestamp($now + 450), end_source = 'epilog'
	WHERE job_id = 3" >/dev/null
assert_eq "1" "$(q -c "SELECT string_agg(job_id::text, ',') FROM aif.reservations")" "reservations after job 3 ended"
assert_eq "$((3 * H))" "$(q -c "SELECT aif.committed_us(ARRAY['p', 'q'], 'cur',
	to_timestamp(0), to_timestamp(4000000000))")" "committed: 1 used by job 3 + 2 reserved by job 1"
# A job that does not fit waits when its cost is within the budget, though what is used will
# not come back: 9.5 of f's 10 (it fits once more GPU-hours are granted or a new period
# begins); one of 10.5 cannot fit f at all.
assert_eq "f t" "$(q -F ' ' -c "SELECT fits, waits FROM aif.reserve('c1', 30, 'q', 19, to_timestamp($now),
	to_timestamp($now + 1800), true)")" "9.5 GPU-hours for q: waits"
assert_eq "f f" "$(q -F ' ' -c "SELECT fits, waits FROM aif.reserve('c1', 31, 'q', 21, to_timestamp($now),
	to_timestamp($now + 1800), true)")" "10.5 GPU-hours for q: refused"
# A span into "next", where the factory has no budget: the part there does not fit
# (the half hour in cur would).
start=$(($(date -u -d "$cur_end" +%s) - 1800))
assert_eq "f next factory f 0 0 $((H / 2))" "$(reserve 5 q 1 3600 "$start")" "a span into a period without budget"
assert_eq "t" "$(reserve 6 q 7 3600 | cut -d' ' -f1)" "7 GPU-hours for q after job 3 ended"

# The funders' view: reserved GPU-hours beside used (p: 2 reserved; f: 2 + 7; q has no budget).
assert_eq "f - 1 9|f p 0 2" \
	"$(q -F ' ' -c "SELECT factory, coalesce(project, '-'), used_gpu_hours, reserved_gpu_hours
		FROM aif_report.budget_status WHERE period = 'cur' ORDER BY project NULLS FIRST" | paste -sd'|')" \
	"budget_status with reservations"

# Two sessions against factory f: the first holds its reservation uncommitted for 2 s; the
# second, started meanwhile, waits for it and then finds no room (1 GPU-hour left).
# (job 6 ends at once: an interval inserted closed releases its reservation too)
q -c "INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id, sector_id,
	uid, user_name, gpus, started_at, ended_at, end_source, exact)
	VALUES ('c1', 6, 'n1', 0, 'q', 's1', 1000, 'u', 7, to_timestamp($now), to_timestamp($now), 'epilog', true)" >/dev/null
assert_eq 1 "$(q -c "SELECT string_agg(job_id::text, ',') FROM aif.reservations")" "reservations after job 6 ended"
left=$((10 - 1 - 2)) # 7 GPU-hours
( q -c "BEGIN" -c "SELECT fits FROM aif.reserve('c1', 7, 'q', $((left - 1)), to_timestamp($now), to_timestamp($now + 3600), true)" \
	-c "SELECT pg_sleep(2)" -c "COMMIT" >"$SQL_WORK/first" ) &
first=$!
sleep 0.5
t0=$(date +%s%N)
second=$(reserve 8 q 2 3600 | cut -d' ' -f1)
waited=$((($(date +%s%N) - t0) / 1000000))
wait "$first"
assert_eq "t" "$(head -1 "$SQL_WORK/first")" "the first session's reservation"
assert_eq "f" "$second" "the second session, after the first committed"
((waited >= 1000)) || fail "the second session did not wait for the first (${waited} ms)"
echo "two sessions: the second waited ${waited} ms and found no room"

# Factory f has 9 of 10 committed now (1 used by job 3, 2 by job 1, 6 by job 7).
# A job whose intervals have all closed (its end raced its admission) gets no reservation.
q -c "INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id, sector_id,
	uid, user_name, gpus, started_at, ended_at, end_source, exact)
	VALUES ('c1', 20, 'n1', 0, 'p', 's1', 1000, 'u', 1, to_timestamp($now), to_timestamp($now), 'epilog', true)" >/dev/null
assert_eq "t" "$(reserve 20 p 1 60 | cut -d' ' -f1)" "a job that has ended"
assert_eq 0 "$(q -c "SELECT count(*) FROM aif.reservations WHERE job_id = 20")" "its reservation"
# Its next run (requeued: restart 1) is reserved, though nothing of that run is recorded yet
# (its start spooled while aifd was away) and its first run's intervals are all closed.
assert_eq "t|1" "$(q -c "SELECT fits FROM aif.reserve('c1', 20, 'p', 1, to_timestamp($now + 120),
	to_timestamp($now + 180), true, restarts => 1)" -c "SELECT count(*) FROM aif.reservations
	WHERE job_id = 20" | paste -sd'|')" "job 20's next run: reserved"
# The late close of an earlier run (its end spooled while aifd was away) leaves the next run's
# reservation, whose own intervals are not recorded yet: job 36's run 0 still open when run 1
# is admitted; run 0 closes: run 1 keeps its reservation; run 1's interval closes: released.
interval() { # interval JOB RESTART PROJECT START: that run's interval on n1, open
	q -c "INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id, sector_id,
		uid, user_name, gpus, started_at, ended_at, end_source, exact)
		VALUES ('c1', $1, 'n1', $2, '$3', 's1', 1000, 'u', 1, to_timestamp($4), NULL, NULL, false)" >/dev/null
}
close_run() { # close_run JOB RESTART END
	q -c "UPDATE aif.usage_intervals SET ended_at = to_timestamp($3), end_source = 'epilog'
		WHERE job_id = $1 AND restart_count = $2" >/dev/null
}
interval 36 0 p "$now"
assert_eq t "$(q -c "SELECT fits FROM aif.reserve('c1', 36, 'p', 1, to_timestamp($now + 60),
	to_timestamp($now + 120), true, restarts => 1)")" "job 36's run 1 admitted while run 0 is open"
close_run 36 0 $((now + 30))
assert_eq 1 "$(q -c "SELECT restart_count FROM aif.reservations WHERE job_id = 36")" \
	"job 36's run 1 reservation after run 0 closed"
interval 36 1 p $((now + 60))
close_run 36 1 $((now + 90))
assert_eq 0 "$(q -c "SELECT count(*) FROM aif.reservations WHERE job_id = 36")" \
	"job 36's reservation after run 1 closed"
assert_eq "t|0" "$(q -c "SELECT aif.reservations_delete(ARRAY['c1'], ARRAY[20::bigint], false)" \
	-c "SELECT fits FROM aif.reserve('c1', 20, 'p', 1, to_timestamp($now), to_timestamp($now + 60), true,
		restarts => 0)" -c "SELECT count(*) FROM aif.reservations WHERE job_id = 20" | sed 1d | paste -sd'|')" \
	"job 20's first run, again: ended, not reserved"
# A reservation that no longer covers its job is replaced only when the new one fits.
assert_eq "t" "$(reserve 21 p 1 600 | cut -d' ' -f1)" "job 21, 10 minutes"
assert_eq "f" "$(reserve 21 p 1 7200 | cut -d' ' -f1)" "job 21 again, 2 hours"
assert_eq 600 "$(q -c "SELECT extract(epoch FROM ends_at - starts_at)::int FROM aif.reservations
	WHERE job_id = 21")" "job 21's reservation, kept"
# One of more GPUs than the job got (a job held while pending was reserved the most it asked
# for) is replaced by the exact one.
assert_eq "t" "$(reserve 25 p 2 60 | cut -d' ' -f1)" "job 25, 2 GPUs"
assert_eq "t" "$(reserve 25 p 1 60 | cut -d' ' -f1)" "job 25, started with 1 GPU"
assert_eq 1 "$(q -c "SELECT gpus FROM aif.reservations WHERE job_id = 25")" "job 25's reservation, exact"
q -c "SELECT aif.reservations_release(ARRAY['c1'], ARRAY[25::bigint])" >/dev/null
# A job id reused for another project (slurmctld's state lost while a job of that id was
# reserved) is not covered by the earlier job's reservation: it is checked and reserved for
# its own project, replacing it.
assert_eq "t" "$(reserve 26 p 1 60 | cut -d' ' -f1)" "job 26 of p"
assert_eq "t" "$(reserve 26 q 1 60 | cut -d' ' -f1)" "job 26 again, of q"
assert_eq q "$(q -c "SELECT project_id FROM aif.reservations WHERE job_id = 26")" "job 26's reservation"
q -c "SELECT aif.reservations_release(ARRAY['c1'], ARRAY[26::bigint])" >/dev/null
# A run that ends while its admission reserves: the close of its last interval takes the
# factory's lock too, so the two take turns and no reservation outlives the job, whichever
# comes first. Before, neither saw the other's uncommitted work: the admission saw the interval
# still open and reserved, and the close found no reservation to release.
# race_close JOB FIRST: JOB's only interval open; FIRST ("close" or "reserve") runs in a session
# that holds it uncommitted for 2 s, the other meanwhile.
race_close() {
	local job=$1 close reserve0 first
	q -c "INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id, sector_id,
		uid, user_name, gpus, started_at, ended_at, end_source, exact)
		VALUES ('c1', $job, 'n1', 0, 'p', 's1', 1000, 'u', 1, to_timestamp($now), NULL, NULL, false)" >/dev/null
	close="UPDATE aif.usage_intervals SET ended_at = to_timestamp($now + 60), end_source = 'epilog'
		WHERE job_id = $job"
	reserve0="SELECT fits FROM aif.reserve('c1', $job, 'p', 1, to_timestamp($now), to_timestamp($now + 60), true)"
	if [[ $2 == close ]]; then
		( PGAPPNAME=race_$job q -c "BEGIN" -c "$close" -c "SELECT pg_sleep(2)" -c "COMMIT" >/dev/null ) &
	else
		( PGAPPNAME=race_$job q -c "BEGIN" -c "$reserve0" -c "SELECT pg_sleep(2)" -c "COMMIT" \
			>"$SQL_WORK/first" ) &
	fi
	first=$!
	# until the first session holds its work uncommitted (it sleeps), at most 10 s
	AIFD_DB=$SQL_DB wait_sql "SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'race_$job'
		  AND wait_event = 'PgSleep'" 1 "job $job: the first session at its sleep" 10
	if [[ $2 == close ]]; then
		assert_eq t "$(q -c "$reserve0")" "job $job reserved while its close commits: fits"
	else
		q -c "$close" >/dev/null
	fi
	wait "$first"
	[[ $2 == close ]] || assert_eq t "$(cat "$SQL_WORK/first")" "job $job reserved before its close: fits"
	assert_eq 0 "$(q -c "SELECT count(*) FROM aif.reservations WHERE job_id = $job")" \
		"job $job, its close and its admission at once, the $2 first: reservations left"
}
race_close 27 close
race_close 28 reserve
# aifd's pass forgets a waiting job only as it listed it (aif.waiting_forget()): a job held again
# since (released, started, found not to fit: its admission recorded it anew while the pass
# looked at it) keeps its new record, the only one that would ever release it. Before, the
# pass deleted whatever record the job had, and the job stayed held for ever.
q -c "INSERT INTO aif.waiting (cluster, job_id, project_id, gpus, seconds, released_at)
	VALUES ('c1', 40, 'p', 1, 60, now())" >/dev/null
listed=$(q -c "SELECT held_at FROM aif.waiting WHERE job_id = 40")
q -c "UPDATE aif.waiting SET held_at = clock_timestamp(), released_at = NULL WHERE job_id = 40" >/dev/null
assert_eq f "$(q -c "SELECT aif.waiting_forget('c1', 40, '$listed')")" "job 40, held again since listed: forgotten"
assert_eq "1 f" "$(q -F ' ' -c "SELECT count(*), bool_or(released_at IS NOT NULL) FROM aif.waiting
	WHERE job_id = 40")" "job 40's new record, held"
listed=$(q -c "SELECT held_at FROM aif.waiting WHERE job_id = 40")
assert_eq t "$(q -c "SELECT aif.waiting_forget('c1', 40, '$listed')")" "job 40 as listed: forgotten"
assert_eq 0 "$(q -c "SELECT count(*) FROM aif.waiting WHERE job_id = 40")" "job 40's records after"
# A waiting job that fits now is reserved (its cost: its time limit, from now) and released,
# though its first try's interval is closed (it was requeued).
q -c "INSERT INTO aif.usage_intervals (cluster, job_id, node, restart_count, project_id, sector_id,
	uid, user_name, gpus, started_at, ended_at, end_source, exact)
	VALUES ('c1', 22, 'n1', 0, 'p', 's1', 1000, 'u', 1, to_timestamp($now), to_timestamp($now), 'epilog', true)" >/dev/null
q -c "INSERT INTO aif.waiting (cluster, job_id, project_id, gpus, seconds) VALUES ('c1', 22, 'p', 1, 1800),
	('c1', 23, 'p', 1, 7200)" >/dev/null
assert_eq "22|t" "$(q -c "SELECT * FROM aif.waiting_release('c1')")" "the waiting jobs released"
assert_eq "1800|t|f" "$(q -c "SELECT extract(epoch FROM r.ends_at - r.starts_at)::int, w.released_at IS NOT NULL,
	(SELECT released_at IS NOT NULL FROM aif.waiting WHERE job_id = 23)
	FROM aif.reservations r JOIN aif.waiting w USING (cluster, job_id) WHERE r.job_id = 22")" \
	"job 22 reserved and marked released, job 23 still waiting"
# One project's waiting jobs that do not fit never keep another's from being tried: 101 of p's
# (3 GPU-hours each, of p's 4, 2 reserved), held before one of q's that fits (a minute); a
# pass tries 100, those looked at least recently first: the first p's 100 oldest, the second
# the one left and q's.
q -c "INSERT INTO aif.waiting (cluster, job_id, project_id, gpus, seconds, held_at)
	SELECT 'c1', 1000 + i, 'p', 1, 10800, now() - interval '1 hour' + i * interval '1 second'
	FROM generate_series(1, 101) i" >/dev/null
q -c "INSERT INTO aif.waiting (cluster, job_id, project_id, gpus, seconds) VALUES ('c1', 24, 'q', 1, 60)" >/dev/null
assert_eq "" "$(q -c "SELECT * FROM aif.waiting_release('c1')")" "the first pass over 101 of p's jobs"
assert_eq "24|t" "$(q -c "SELECT * FROM aif.waiting_release('c1')")" "q's job, behind 101 of p's that do not fit"
q -c "DELETE FROM aif.waiting WHERE job_id > 1000" >/dev/null
# Nor do more than a pass's share of projects whose jobs do not fit keep another's, or a
# project's later job, from ever being tried: 101 projects r001..r101 of f (no budget of their
# own) each wait with a job of 9.5 of f's 10 GPU-hours, held before r102's of a minute and
# r001's second, of a minute too. The first pass tries 100 and releases none; the second tries
# those it left first: r102's and r001's second. Before, every pass tried the same 100, and
# both waited for ever (and after a first fix, which took each project's oldest first, r001's
# second did).
apply_f reserve-r.yaml "ARRAY(SELECT format('r%s', lpad(i::text, 3, '0')) FROM generate_series(1, 102) i)"
q -c "INSERT INTO aif.waiting (cluster, job_id, project_id, gpus, seconds, held_at)
	SELECT 'c1', 2000 + i, format('r%s', lpad(i::text, 3, '0')), 1, CASE WHEN i = 102 THEN 60 ELSE 34200 END,
	       now() - interval '1 hour' + i * interval '1 second'
	FROM generate_series(1, 102) i" \
	-c "INSERT INTO aif.waiting (cluster, job_id, project_id, gpus, seconds) VALUES ('c1', 2103, 'r001', 1, 60)" >/dev/null
assert_eq "f t" "$(q -F ' ' -c "SELECT fits, waits FROM aif.reserve_trial('c1', 2001, 'r001', 1, 34200)")" \
	"r001's job: does not fit now, but could"
assert_eq "" "$(q -c "SELECT * FROM aif.waiting_release('c1')")" "the first pass over 102 projects' jobs"
assert_eq "2102|t 2103|t" "$(q -c "SELECT * FROM aif.waiting_release('c1') ORDER BY 1" | paste -sd' ')" \
	"the second: r102's job and r001's second, left by the first"
q -c "SELECT aif.reservations_delete(ARRAY['c1', 'c1'], ARRAY[2102, 2103]::bigint[], false)" \
	-c "DELETE FROM aif.waiting WHERE job_id > 2000" >/dev/null
# Among the jobs a pass takes, each project's oldest goes before anyone's second, whenever each
# was held: r001 waits with a job of 9.5 hours and one of 5 minutes, tried by a pass while f
# is full; r002's of 5 minutes is held after it; then f has room for one of the two short
# ones: r002's gets it. (Ordered by when each was looked at first, r001's second got it.)
fill_f() { # fill_f JOB SECONDS_LEFT: a reservation of r003's that leaves f about SECONDS_LEFT
	q -c "SELECT fits FROM aif.reserve('c1', $1, 'r003', 1, now(), now() + make_interval(secs =>
		(SELECT (budget_us - committed_us) / 1000000 - $2 FROM aif.reserve_trial('c1', 0, 'r003', 1, 1))),
		false)" >/dev/null
}
fill_f 2200 0
q -c "INSERT INTO aif.waiting (cluster, job_id, project_id, gpus, seconds, held_at)
	VALUES ('c1', 2201, 'r001', 1, 34200, now() - interval '2 minutes'),
	       ('c1', 2202, 'r001', 1, 300, now() - interval '1 minute')" >/dev/null
assert_eq "" "$(q -c "SELECT * FROM aif.waiting_release('c1')")" "r001's two jobs, f full"
q -c "INSERT INTO aif.waiting (cluster, job_id, project_id, gpus, seconds) VALUES ('c1', 2203, 'r002', 1, 300)" \
	-c "SELECT aif.reservations_delete(ARRAY['c1'], ARRAY[2200::bigint], false)" >/dev/null
fill_f 2204 450
assert_eq "2203|t" "$(q -c "SELECT * FROM aif.waiting_release('c1')")" "room for one short job: r002's, r001's first"
q -c "SELECT aif.reservations_delete(ARRAY['c1', 'c1'], ARRAY[2203, 2204]::bigint[], false)" \
	-c "DELETE FROM aif.waiting WHERE job_id > 2200" >/dev/null
# One that can no longer fit at all (100 GPU-hours, of p's 4) is released unreserved: its
# admission refuses it at its start and says why, rather than it waiting for ever.
q -c "INSERT INTO aif.waiting (cluster, job_id, project_id, gpus, seconds) VALUES ('c1', 29, 'p', 1, 360000)" >/dev/null
assert_eq "29|f|0" "$(q -c "SELECT * FROM aif.waiting_release('c1')" -c "SELECT count(*) FROM aif.reservations
	WHERE job_id = 29" | paste -sd'|')" "a job whose cost is more than its budget: released, unreserved"
q -c "DELETE FROM aif.waiting WHERE job_id = 29" >/dev/null
# aif.reserve_trial(): aif.reserve()'s answer for a job placed from now, nothing reserved.
reservations_now() { q -c "SELECT count(*), coalesce(sum(gpus), 0) FROM aif.reservations"; }
trial() { # trial JOB PROJECT GPUS SECONDS: fits and waits
	q -F ' ' -c "SELECT fits, waits FROM aif.reserve_trial('c1', $1, '$2', $3, $4)"
}
before=$(reservations_now) totals=$(q -c "SELECT sum(gpu_us) FROM aif.reserved_totals")
assert_eq "t f" "$(trial 40 q 1 60)" "a trial that fits"
assert_eq "f t" "$(trial 41 q 1 18000)" "a trial that does not fit now, but could (5 of 10)"
assert_eq "f f" "$(trial 42 q 1 360000)" "a trial that never fits (100 of 10)"
assert_eq "$before|$totals" "$(reservations_now)|$(q -c "SELECT sum(gpu_us) FROM aif.reserved_totals")" \
	"reservations and their totals after the trials"

# The totals the admissions read agree with the reservations, also once a period moved.
totals_agree() { # totals_agree WHAT
	assert_eq "$(q -c "SELECT h.period_id, r.project_id, sum(h.gpu_us) FROM aif.reservations r
		CROSS JOIN LATERAL aif.reservation_shares(r.gpus, r.starts_at, r.ends_at) h
		GROUP BY 1, 2 HAVING sum(h.gpu_us) > 0 ORDER BY 1, 2")" \
		"$(q -c "SELECT period_id, project_id, gpu_us FROM aif.reserved_totals WHERE gpu_us > 0 ORDER BY 1, 2")" \
		"aif.reserved_totals $1"
}
# A running run's reservation follows slurmctld's end of the run (aif.reservations_follow(), at
# each reconciliation pass): raised (an operator's scontrol update TimeLimit=), across a period
# boundary and whatever the budgets have left (the job runs); lowered; a run past its end (or
# with none: 0) reserved up to now + the step (120 s here) once less than half of it is left,
# never less than it had. Only that run's: not another run's (46), nor a release's (47, no run)
# until the run's admission finds it covers the run and makes it the run's. A later step of a
# run whose reservation ends before its time limit (raised, not yet followed) is covered.
# (a minute each: f has about 9 of its 10 committed)
t=$(date +%s)
q -c "SELECT aif.reserve('c1', 45, 'q', 1, to_timestamp($t), to_timestamp($t + 60), true, restarts => 0)" \
	-c "SELECT aif.reserve('c1', 46, 'q', 1, to_timestamp($t), to_timestamp($t + 60), true, restarts => 1)" \
	-c "SELECT aif.reserve('c1', 47, 'q', 1, to_timestamp($t), to_timestamp($t + 60), false)" >/dev/null
follow() { # follow END: the three, as runs 0 ending at END; what moved, by how many seconds
	q -F ' ' -c "SELECT job, extract(epoch FROM new_end - old_end)::int, limit_moved
		FROM aif.reservations_follow('c1', ARRAY[45, 46, 47]::bigint[], ARRAY[0, 0, 0]::bigint[],
			ARRAY[$1, $1, $1]::bigint[], 120)" | paste -sd'|'
}
spans() {
	q -F ' ' -c "SELECT job_id, extract(epoch FROM ends_at - starts_at)::int FROM aif.reservations
		WHERE job_id BETWEEN 45 AND 47 ORDER BY job_id" | paste -sd'|'
}
assert_eq "t|60" "$(q -c "SELECT fits FROM aif.reserve('c1', 45, 'q', 1, to_timestamp($t),
	to_timestamp($t + 7200), true, restarts => 0)" -c "SELECT extract(epoch FROM ends_at - starts_at)::int
	FROM aif.reservations WHERE job_id = 45" | paste -sd'|')" "a later step of job 45's run, 2 h limit: covered"
late=$(($(date -u -d "$cur_end" +%s) + 3600)) # an hour into next
assert_eq "45 $((late - t - 60)) t" "$(follow "$late")" "job 45's time limit raised"
assert_eq "45 $((late - t))|46 60|47 60" "$(spans)" "the spans after the raise"
totals_agree "after a reservation followed a raised limit"
assert_eq "f" "$(reserve 48 q 1 60 | cut -d' ' -f1)" "a job beside the raised reservation"
assert_eq "" "$(follow "$late")" "the same end again: nothing moves"
assert_eq "45 $((t + 300 - late)) t" "$(follow $((t + 300)))" "job 45's time limit lowered"
assert_eq "45 300|46 60|47 60" "$(spans)" "the spans after the lowering"
totals_agree "after a reservation followed a lowered limit"
ahead() { # ahead JOB: whether its reservation ends 100 to 121 s from now
	q -c "SELECT ends_at BETWEEN now() + interval '100 seconds' AND now() + interval '121 seconds'
		FROM aif.reservations WHERE job_id = $1"
}
assert_eq "" "$(follow $((t - 600)))" "its end past, more than a minute of its reservation left: nothing moves"
assert_eq "" "$(follow 0)" "no end (UNLIMITED), the same: nothing moves"
# (its reservation made to end at its start, as if it had run out)
q -c "UPDATE aif.reservations SET ends_at = starts_at WHERE job_id = 45" \
	-c "SELECT aif.reserved_totals_recompute()" >/dev/null
assert_eq "45 f" "$(follow $((t - 600)) | cut -d' ' -f1,3)" "its end past, its reservation run out: rolled"
assert_eq t "$(ahead 45)" "job 45's reservation, rolled: two minutes ahead"
totals_agree "after a reservation was rolled ahead"
assert_eq "" "$(follow 0)" "no end (UNLIMITED), reserved ahead already: nothing moves"
# Job 47's run admitted: its release's reservation covers it, and becomes the run's.
assert_eq "t|0" "$(q -c "SELECT fits FROM aif.reserve('c1', 47, 'q', 1, to_timestamp($t + 1),
	to_timestamp($t + 60), true, restarts => 0)" -c "SELECT restart_count FROM aif.reservations
	WHERE job_id = 47" | paste -sd'|')" "job 47's release's reservation, adopted by its run"
assert_eq "45,47" "$(follow $((t + 300)) | tr '|' '\n' | cut -d' ' -f1 | paste -sd,)" \
	"the reservations moved, job 47's now too"
q -c "SELECT aif.reservations_delete(ARRAY['c1', 'c1', 'c1'], ARRAY[45, 46, 47]::bigint[], false)" >/dev/null
totals_agree "after the three were released"
# A requeued job's next run admitted while its last run's reservation was still there (that
# run's close not recorded yet, so the admission took it for the run's): a pass, once the last
# run is closed, gives it to the running run, from that run's start, so that it follows the
# run's end, and the run's close releases it. Only a run of the reservation's project takes it over,
# and only once no earlier run's usage is open (it counts through the reservation until it
# closes). Runs 0 of jobs 49 (1 min), 50 (1 min), 51 (5 min) and 52 (1 min) reserved at t;
# runs 1 open from t + 120, 50's in another project (its id reused); 52's run 0 still open.
# slurmctld says the runs end at t + 1020, 51's is UNLIMITED: its end is kept (a rolling end
# never shortens). Job 53: a release's reservation (no run; the job requeued, held while
# pending, then run again on its kept admission), its run 1 open from t + 120: taken over too.
# Not a release's that the run's own admission is to make its own (aif.reserve(), which checks
# the rate): job 54's (run 0 open) and job 55's (run 1 open, held at its start: no kept
# admission); nor one whose kept admission is not the run's: of another project (56), of
# another uid (57: an earlier job of the id).
# (Each run uses a second.)
t=$(date +%s)
for j in 49 50 51 52; do
	q -c "SELECT aif.reserve('c1', $j, 'q', 1, to_timestamp($t), to_timestamp($t + $((j == 51 ? 300 : 60))),
		true, restarts => 0)" >/dev/null
	interval $j 0 q "$t"
	interval $j 1 "$([[ $j == 50 ]] && echo p || echo q)" $((t + 120))
	[[ $j == 52 ]] || close_run $j 0 $((t + 1))
done
for j in 53 54 55 56 57; do
	q -c "SELECT aif.reserve('c1', $j, 'q', 1, to_timestamp($t), to_timestamp($t + 60), false)" >/dev/null
done
q -c "INSERT INTO aif.admissions (cluster, job_id, uid, verdict, reason, project_id, sector_id)
	VALUES ('c1', 53, 1000, 'ok', 'member', 'q', 's1'), ('c1', 56, 1000, 'ok', 'member', 'p', 's1'),
	       ('c1', 57, 2000, 'ok', 'member', 'q', 's1')" >/dev/null
interval 53 1 q $((t + 120))
interval 54 0 q $((t + 120))
for j in 55 56 57; do interval $j 1 q $((t + 120)); done
assert_eq "0,0,0,0,,,,," "$(q -c "SELECT string_agg(coalesce(restart_count::text, ''), ',' ORDER BY job_id)
	FROM aif.reservations WHERE job_id BETWEEN 49 AND 57")" "the reservations the runs stand on"
follow_runs() { # follow_runs STARTS: runs 1 of jobs 49 to 57 (54: run 0), starting at STARTS
	q -F ' ' -c "SELECT job, extract(epoch FROM new_end - old_end)::int, limit_moved, taken,
		coalesce(run_was::text, '-') FROM aif.reservations_follow('c1',
			ARRAY[49, 50, 51, 52, 53, 54, 55, 56, 57]::bigint[], ARRAY[1, 1, 1, 1, 1, 0, 1, 1, 1]::bigint[],
			ARRAY[$((t + 1020)), $((t + 1020)), 0, $((t + 1020)), $((t + 1020)), $((t + 1020)),
			$((t + 1020)), $((t + 1020)), $((t + 1020))]::bigint[], 120, $1)" | paste -sd'|'
}
assert_eq "49 960 t t 0|51 0 f t 0|53 960 t t -" "$(follow_runs "array_fill($((t + 120)), ARRAY[9])::bigint[]")" \
	"runs of jobs 49, 51 and 53 take over the reservations they stand on"
spans_4953() {
	q -F ' ' -c "SELECT job_id, coalesce(restart_count::text, '-'), extract(epoch FROM starts_at)::bigint - $t,
		extract(epoch FROM ends_at - starts_at)::int FROM aif.reservations WHERE job_id BETWEEN 49 AND 57
		ORDER BY 1" | paste -sd'|'
}
assert_eq "49 1 120 900|50 0 0 60|51 1 120 180|52 0 0 60|53 1 120 900|54 - 0 60|55 - 0 60|56 - 0 60|57 - 0 60" \
	"$(spans_4953)" "jobs 49 to 57's reservations: restart count, start, span"
totals_agree "after runs took over the reservations they stood on"
# Job 52's run 0 closes; slurmctld gives no start (0): the run's first interval's is taken.
close_run 52 0 $((t + 1))
assert_eq "52 960 t t 0" "$(follow_runs "array_fill(0, ARRAY[9])::bigint[]")" \
	"job 52's run 1 takes over run 0's reservation once run 0 closed"
assert_eq "52 1 120 900" "$(spans_4953 | tr '|' '\n' | grep '^52 ')" "job 52's reservation"
totals_agree "after job 52's run took over its reservation"
close_run 49 1 $((t + 121))
assert_eq "50,51,52,53,54,55,56,57" "$(q -c "SELECT string_agg(job_id::text, ',' ORDER BY job_id)
	FROM aif.reservations WHERE job_id BETWEEN 49 AND 57")" "the reservations after job 49's run 1 closed"
for j in 50 51 52 53 55 56 57; do close_run $j 1 $((t + 121)); done
close_run 54 0 $((t + 121))
assert_eq 0 "$(q -c "SELECT count(*) FROM aif.reservations WHERE job_id BETWEEN 49 AND 57")" \
	"the reservations after all runs closed"
q -c "DELETE FROM aif.admissions WHERE job_id IN (53, 56, 57)" >/dev/null
totals_agree "after jobs 49 to 57 ended"

# A reservation that nothing released (its run's records lost, or unattributed) expires an hour
# past its span's end, unless an interval of its job is open: job 37 (its span ended 2 hours
# ago, no interval), job 38 (the same, an unattributed interval open: running past its limit),
# job 39 (its span ends in a minute).
ago=$((now - 7200 - 60))
reserve 37 q 1 60 "$ago" >/dev/null
reserve 38 q 1 60 "$ago" >/dev/null
reserve 39 q 1 60 >/dev/null
q -c "INSERT INTO aif.unattributed_intervals (cluster, job_id, node, restart_count, reason, gpus, started_at)
	VALUES ('c1', 38, 'n1', 0, 'not-member', 1, to_timestamp($ago))" >/dev/null
assert_eq "1|38,39" "$(q -c "SELECT aif.reservations_expire('c1')" -c "SELECT string_agg(job_id::text, ','
	ORDER BY job_id) FROM aif.reservations WHERE job_id BETWEEN 37 AND 39" | paste -sd'|')" \
	"reservations expired: job 37's"
totals_agree "after one expired"
q -c "DELETE FROM aif.unattributed_intervals WHERE job_id = 38" >/dev/null
assert_eq "1|39" "$(q -c "SELECT aif.reservations_expire('c1')" -c "SELECT string_agg(job_id::text, ','
	ORDER BY job_id) FROM aif.reservations WHERE job_id BETWEEN 37 AND 39" | paste -sd'|')" \
	"reservations expired once job 38's interval is gone"
q -c "SELECT aif.reservations_delete(ARRAY['c1'], ARRAY[39::bigint], false)" >/dev/null
totals_agree "after reserving and releasing"
[[ -n $(q -c "SELECT * FROM aif.reserved_totals WHERE gpu_us > 0") ]] || fail "no reserved totals to check"
q -c "UPDATE aif.periods SET ends_on = (now() AT TIME ZONE 'UTC')::date WHERE id = 'cur'" >/dev/null # as apply would
q -c "SELECT aif.reserved_totals_recompute()" >/dev/null
totals_agree "after cur was cut at today"

# The plan and the audit log show a change of admission.
q <<SQL >"$SQL_WORK/plan"
BEGIN;
SELECT aif.begin_staging();
INSERT INTO stage_sectors VALUES ('s1');
INSERT INTO stage_periods SELECT id, starts_on, ends_on FROM aif.periods;
INSERT INTO stage_factories (id, name, on_exhausted, grace_seconds, warn_at, allow_overcommit)
	VALUES ('f', NULL, 'deny', 0, '{}', false);
INSERT INTO stage_factory_clusters VALUES ('f', 'c1');
INSERT INTO stage_factory_budgets VALUES ('f', 'cur', 10);
INSERT INTO stage_projects (id, factory_id, name, on_exhausted, grace_seconds, warn_at)
	VALUES ('p', 'f', NULL, 'deny', 0, '{}'), ('q', 'f', NULL, 'deny', 0, '{}');
INSERT INTO stage_project_sectors VALUES ('p', 's1', 0), ('q', 's1', 0);
INSERT INTO stage_project_budgets VALUES ('p', 'cur', 4);
SELECT action, object, id, coalesce(detail, '') FROM aif.plan();
ROLLBACK;
SQL
assert_eq "change|factory|f|admission reserve -> used
change|project|p|admission reserve -> used
change|project|q|admission reserve -> used" "$(grep '^change' "$SQL_WORK/plan")" "the plan of admission: used"
# A project that admits by used in a factory that reserves is refused.
assert_fails "project p admits by used, but its factory f reserves" "a project used in a reserving factory" \
	q -c "BEGIN" -c "SELECT aif.begin_staging()" -c "INSERT INTO stage_sectors VALUES ('s1')" \
	-c "INSERT INTO stage_periods SELECT id, starts_on, ends_on FROM aif.periods" \
	-c "INSERT INTO stage_factories (id, name, on_exhausted, grace_seconds, warn_at, allow_overcommit, admission) VALUES ('f', NULL, 'deny', 0, '{}', false, 'reserve')" \
	-c "INSERT INTO stage_projects (id, factory_id, name, on_exhausted, grace_seconds, warn_at) VALUES ('p', 'f', NULL, 'deny', 0, '{}')" \
	-c "INSERT INTO stage_project_sectors VALUES ('p', 's1', 0)" -c "SELECT * FROM aif.plan()"
# The factories' locks of a close of many jobs (aif.reservations_lock_jobs()): when its
# projects name every factory (here f, through p) and it has more than 64 jobs, it locks them
# all without looking the jobs up in aif.usage_intervals (a bulk load or a settle round used to
# scan the whole table for them); otherwise it looks each job up (jobs 1 to N: most have
# intervals of p or q). Either way f is locked.
lock_jobs() { # lock_jobs N PROJECTS: scans of aif.usage_intervals, then factories locked
	q -F ' ' -c "BEGIN" -c "SELECT aif.reservations_lock_jobs(array_fill('c1'::text, ARRAY[$1]),
			ARRAY(SELECT g::bigint FROM generate_series(1, $1) g), $2)" \
		-c "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables
			WHERE relid = 'aif.usage_intervals'::regclass" \
		-c "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'
			AND classid = 1634297345" -c "ROLLBACK" | tail -n 2 | paste -sd' '
}
assert_eq "0 1" "$(lock_jobs 65 "'{p}'")" "65 jobs of p: f locked, no lookup"
assert_match '^[1-9][0-9]* 1$' "$(lock_jobs 64 "'{p}'")" "64 jobs of p: looked up, f locked"
assert_match '^[1-9][0-9]* 1$' "$(lock_jobs 65 "'{}'")" "65 jobs, no project: looked up, f locked"

# With a second factory g (project gp), p alone no longer names every factory: looked up; p and
# gp lock both factories without a lookup.
q <<SQL >/dev/null
BEGIN;
SELECT aif.begin_staging();
INSERT INTO stage_sectors VALUES ('s1');
INSERT INTO stage_periods SELECT id, starts_on, ends_on FROM aif.periods;
INSERT INTO stage_factories (id, name, on_exhausted, grace_seconds, warn_at, allow_overcommit, admission)
	VALUES ('f', NULL, 'deny', 0, '{}', false, 'reserve'), ('g', NULL, 'deny', 0, '{}', false, 'reserve');
INSERT INTO stage_factory_clusters VALUES ('f', 'c1'), ('g', 'c2');
INSERT INTO stage_projects (id, factory_id, name, on_exhausted, grace_seconds, warn_at, admission)
	SELECT id, 'f', NULL, 'deny', 0, '{}'::int[], 'reserve' FROM aif.projects WHERE factory_id = 'f'
	UNION ALL VALUES ('gp', 'g', NULL, 'deny', 0, '{}'::int[], 'reserve');
INSERT INTO stage_project_sectors SELECT id, 's1', 0 FROM stage_projects;
SELECT count(*) FROM aif.apply('two-factories.yaml', sha256('two-factories'), 'test');
COMMIT;
SQL
assert_match '^[1-9][0-9]* 1$' "$(lock_jobs 65 "'{p}'")" "65 jobs of p, factory g too: looked up, f locked"
assert_eq "0 2" "$(lock_jobs 65 "'{p,gp}'")" "65 jobs of p and gp: f and g locked, no lookup"

echo "sql reservations: all checks passed"
