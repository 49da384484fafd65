-- The store's SQL as a reviewer reads it: every statement the store names (module-level statements of
-- taskq/store/ and taskq/dialect.py, and the statement builders below with the arguments that give each
-- shape), compiled for SQLite and for PostgreSQL (psycopg) into one file, tests/sql/statements.sql.
-- tests/unit/test_sql_snapshot.py fails with a diff when the compiled SQL and the file differ, so a change
-- to the SQL shows up in review as a change to that file.
--
-- Refresh it after a deliberate change (from the checkout):
--
--     python tests/support/sql_snapshot.py --write
--
-- Compiled against the dialects only (no server). Constants (statuses, 100.0, false, LIMIT 500) are shown
-- as literals; `:name` is a value bound per call, `__[POSTCOMPILE_name]` a list bound per call. The SQLite
-- driver path's statements (taskq/store/hot.py) are shown as the exact text given to sqlite3, `?` binds.

-- ======== Statements named in the store's modules

-- ==== claim._CLAIM_CHOSEN
-- sqlite
UPDATE tasks SET status='running', worker_id=:worker_id, lease_until=:lease_until, cancel_requested=0, started_at=NULL
    WHERE tasks.id IN (__[POSTCOMPILE_ids]) AND tasks.status = 'pending' RETURNING id, name, queue, args, kwargs,
    status, priority, run_after, attempts + 1 AS attempts, max_retries, dedup_key, parent_id, progress,
    progress_message, result, error, error_log, worker_id, lease_until, cancel_requested, timeout, continuation,
    children_total, children_completed, children_failed, children_cancelled, created_at, started_at, finished_at,
    trace_context;
-- postgresql
UPDATE tasks SET status='running', worker_id=:worker_id::VARCHAR, lease_until=:lease_until::TIMESTAMP WITH TIME ZONE,
    cancel_requested=false, started_at=NULL WHERE tasks.id IN (__[POSTCOMPILE_ids]) AND tasks.status = 'pending'
    RETURNING tasks.id, tasks.name, tasks.queue, tasks.args, tasks.kwargs, tasks.status, tasks.priority,
    tasks.run_after, tasks.attempts + 1 AS attempts, tasks.max_retries, tasks.dedup_key, tasks.parent_id,
    tasks.progress, tasks.progress_message, tasks.result, tasks.error, tasks.error_log, tasks.worker_id,
    tasks.lease_until, tasks.cancel_requested, tasks.timeout, tasks.continuation, tasks.children_total,
    tasks.children_completed, tasks.children_failed, tasks.children_cancelled, tasks.created_at, tasks.started_at,
    tasks.finished_at, tasks.trace_context;

-- ==== claim._RUNNING_BY_NAME
-- sqlite and postgresql
SELECT tasks.name, count(*) AS count_1
FROM tasks
WHERE tasks.status = 'running' AND tasks.name IN (__[POSTCOMPILE_names]) GROUP BY tasks.name;

-- ==== claim._RUNNING_BY_QUEUE
-- sqlite and postgresql
SELECT tasks.queue, count(*) AS count_1
FROM tasks
WHERE tasks.status = 'running' AND tasks.queue IN (__[POSTCOMPILE_queues]) GROUP BY tasks.queue;

-- ==== enqueue._INSERT_PLAIN
-- sqlite
INSERT INTO tasks (id, name, queue, args, kwargs, status, priority, run_after, attempts, max_retries, dedup_key,
    parent_id, progress, progress_message, result, error, error_log, worker_id, lease_until, cancel_requested, timeout,
    continuation, children_total, children_completed, children_failed, children_cancelled, created_at, started_at,
    finished_at, trace_context) VALUES (:id, :name, :queue, :args, :kwargs, :status, :priority, :run_after, :attempts,
    :max_retries, :dedup_key, :parent_id, :progress, :progress_message, :result, :error, :error_log, :worker_id,
    :lease_until, :cancel_requested, :timeout, :continuation, :children_total, :children_completed, :children_failed,
    :children_cancelled, :created_at, :started_at, :finished_at, :trace_context) RETURNING id;
-- postgresql
INSERT INTO tasks (id, name, queue, args, kwargs, status, priority, run_after, attempts, max_retries, dedup_key,
    parent_id, progress, progress_message, result, error, error_log, worker_id, lease_until, cancel_requested, timeout,
    continuation, children_total, children_completed, children_failed, children_cancelled, created_at, started_at,
    finished_at, trace_context) VALUES (:id::BIGINT, :name::VARCHAR, :queue::VARCHAR, :args::JSON, :kwargs::JSON,
    :status::VARCHAR, :priority::INTEGER, :run_after::TIMESTAMP WITH TIME ZONE, :attempts::INTEGER,
    :max_retries::INTEGER, :dedup_key::VARCHAR, :parent_id::BIGINT, :progress, :progress_message::VARCHAR,
    :result::JSON, :error::VARCHAR, :error_log::JSON, :worker_id::VARCHAR, :lease_until::TIMESTAMP WITH TIME ZONE,
    :cancel_requested, :timeout, :continuation::VARCHAR, :children_total::INTEGER, :children_completed::INTEGER,
    :children_failed::INTEGER, :children_cancelled::INTEGER, :created_at::TIMESTAMP WITH TIME ZONE,
    :started_at::TIMESTAMP WITH TIME ZONE, :finished_at::TIMESTAMP WITH TIME ZONE, :trace_context::VARCHAR) RETURNING
    tasks.id;

-- ==== enqueue._INSERT_MANY
-- sqlite
INSERT INTO tasks (id, name, queue, args, kwargs, status, priority, run_after, attempts, max_retries, dedup_key,
    parent_id, progress, progress_message, result, error, error_log, worker_id, lease_until, cancel_requested, timeout,
    continuation, children_total, children_completed, children_failed, children_cancelled, created_at, started_at,
    finished_at, trace_context) VALUES (:id, :name, :queue, :args, :kwargs, :status, :priority, :run_after, :attempts,
    :max_retries, :dedup_key, :parent_id, :progress, :progress_message, :result, :error, :error_log, :worker_id,
    :lease_until, :cancel_requested, :timeout, :continuation, :children_total, :children_completed, :children_failed,
    :children_cancelled, :created_at, :started_at, :finished_at, :trace_context) RETURNING id;
-- postgresql
INSERT INTO tasks (id, name, queue, args, kwargs, status, priority, run_after, attempts, max_retries, dedup_key,
    parent_id, progress, progress_message, result, error, error_log, worker_id, lease_until, cancel_requested, timeout,
    continuation, children_total, children_completed, children_failed, children_cancelled, created_at, started_at,
    finished_at, trace_context) VALUES (:id::BIGINT, :name::VARCHAR, :queue::VARCHAR, :args::JSON, :kwargs::JSON,
    :status::VARCHAR, :priority::INTEGER, :run_after::TIMESTAMP WITH TIME ZONE, :attempts::INTEGER,
    :max_retries::INTEGER, :dedup_key::VARCHAR, :parent_id::BIGINT, :progress, :progress_message::VARCHAR,
    :result::JSON, :error::VARCHAR, :error_log::JSON, :worker_id::VARCHAR, :lease_until::TIMESTAMP WITH TIME ZONE,
    :cancel_requested, :timeout, :continuation::VARCHAR, :children_total::INTEGER, :children_completed::INTEGER,
    :children_failed::INTEGER, :children_cancelled::INTEGER, :created_at::TIMESTAMP WITH TIME ZONE,
    :started_at::TIMESTAMP WITH TIME ZONE, :finished_at::TIMESTAMP WITH TIME ZONE, :trace_context::VARCHAR) RETURNING
    tasks.id;

-- ==== outcomes._COMPLETE_PLAIN
-- sqlite
UPDATE tasks SET status='completed', attempts=CASE WHEN (tasks.started_at IS NULL) THEN tasks.attempts + 1 ELSE
    tasks.attempts END, progress=100.0, result=:result, lease_until=NULL, cancel_requested=0,
    started_at=coalesce(tasks.started_at, :started), finished_at=:now WHERE tasks.id = :owner_task_id AND tasks.status =
    'running' AND tasks.worker_id = :owner_worker_id AND tasks.attempts BETWEEN :owner_attempt - 1 AND :owner_attempt;
-- postgresql
UPDATE tasks SET status='completed', attempts=CASE WHEN (tasks.started_at IS NULL) THEN tasks.attempts + 1 ELSE
    tasks.attempts END, progress=100.0, result=:result::JSON, lease_until=NULL, cancel_requested=false,
    started_at=coalesce(tasks.started_at, :started), finished_at=:now::TIMESTAMP WITH TIME ZONE WHERE tasks.id =
    :owner_task_id::BIGINT AND tasks.status = 'running' AND tasks.worker_id = :owner_worker_id::VARCHAR AND
    tasks.attempts BETWEEN :owner_attempt::INTEGER - 1 AND :owner_attempt::INTEGER;

-- ==== outcomes._SET_PROGRESS
-- sqlite
UPDATE tasks SET progress=:progress, progress_message=:message WHERE tasks.id = :task_id AND tasks.status = 'running';
-- postgresql
UPDATE tasks SET progress=:progress, progress_message=:message::VARCHAR WHERE tasks.id = :task_id::BIGINT AND
    tasks.status = 'running';

-- ==== outcomes._MARK_STARTED
-- sqlite
UPDATE tasks SET attempts=(tasks.attempts + 1), started_at=:started WHERE tasks.id = :owner_task_id AND tasks.status =
    'running' AND tasks.worker_id = :owner_worker_id AND tasks.started_at IS NULL;
-- postgresql
UPDATE tasks SET attempts=(tasks.attempts + 1), started_at=:started::TIMESTAMP WITH TIME ZONE WHERE tasks.id =
    :owner_task_id::BIGINT AND tasks.status = 'running' AND tasks.worker_id = :owner_worker_id::VARCHAR AND
    tasks.started_at IS NULL;

-- ==== outcomes._RELEASE
-- sqlite and postgresql
UPDATE tasks SET status='pending', attempts=CASE WHEN (tasks.started_at IS NOT NULL AND tasks.attempts > 0) THEN
    tasks.attempts - 1 ELSE tasks.attempts END, worker_id=NULL, lease_until=NULL, started_at=NULL WHERE tasks.id IN
    (__[POSTCOMPILE_task_ids]) AND tasks.status = 'running';

-- ==== outcomes._RELEASE_OWNED
-- sqlite
UPDATE tasks SET status='pending', attempts=CASE WHEN (tasks.started_at IS NOT NULL AND tasks.attempts > 0) THEN
    tasks.attempts - 1 ELSE tasks.attempts END, worker_id=NULL, lease_until=NULL, started_at=NULL WHERE tasks.id IN
    (__[POSTCOMPILE_task_ids]) AND tasks.status = 'running' AND tasks.worker_id = :owner_worker_id;
-- postgresql
UPDATE tasks SET status='pending', attempts=CASE WHEN (tasks.started_at IS NOT NULL AND tasks.attempts > 0) THEN
    tasks.attempts - 1 ELSE tasks.attempts END, worker_id=NULL, lease_until=NULL, started_at=NULL WHERE tasks.id IN
    (__[POSTCOMPILE_task_ids]) AND tasks.status = 'running' AND tasks.worker_id = :owner_worker_id::VARCHAR;

-- ==== outcomes._RUNNING_OF_WORKER
-- sqlite
SELECT tasks.id, tasks.started_at
FROM tasks
WHERE tasks.status = 'running' AND tasks.worker_id = :owner_worker_id;
-- postgresql
SELECT tasks.id, tasks.started_at
FROM tasks
WHERE tasks.status = 'running' AND tasks.worker_id = :owner_worker_id::VARCHAR FOR UPDATE;

-- ==== outcomes._RUNNING_WORKER_IDS
-- sqlite and postgresql
SELECT DISTINCT tasks.worker_id
FROM tasks
WHERE tasks.status = 'running';

-- ==== outcomes._CANCEL_REQUESTED_AMONG
-- sqlite
SELECT tasks.id
FROM tasks
WHERE tasks.id IN (__[POSTCOMPILE_ids]) AND tasks.cancel_requested IS 1;
-- postgresql
SELECT tasks.id
FROM tasks
WHERE tasks.id IN (__[POSTCOMPILE_ids]) AND tasks.cancel_requested IS true;

-- ==== outcomes._EXPIRED_LEASES
-- sqlite
SELECT tasks.id, tasks.worker_id, tasks.lease_until, tasks.started_at
FROM tasks
WHERE tasks.status = 'running' AND tasks.lease_until < :now
 LIMIT 500 OFFSET 0;
-- postgresql
SELECT tasks.id, tasks.worker_id, tasks.lease_until, tasks.started_at
FROM tasks
WHERE tasks.status = 'running' AND tasks.lease_until < :now::TIMESTAMP WITH TIME ZONE
 LIMIT 500 FOR UPDATE SKIP LOCKED;

-- ==== outcomes._RENEW_LEASES
-- sqlite
UPDATE tasks SET lease_until=:lease_until WHERE tasks.id IN (__[POSTCOMPILE_task_ids]) AND tasks.status = 'running' AND
    tasks.worker_id = :owner_worker_id RETURNING id, cancel_requested;
-- postgresql
UPDATE tasks SET lease_until=:lease_until::TIMESTAMP WITH TIME ZONE WHERE tasks.id IN (__[POSTCOMPILE_task_ids]) AND
    tasks.status = 'running' AND tasks.worker_id = :owner_worker_id::VARCHAR RETURNING tasks.id, tasks.cancel_requested;

-- ==== outcomes._RECORDED_AMONG
-- sqlite
SELECT tasks.id
FROM tasks
WHERE tasks.id IN (__[POSTCOMPILE_ids]) AND tasks.status = 'completed' AND tasks.worker_id = :owner_worker_id;
-- postgresql
SELECT tasks.id
FROM tasks
WHERE tasks.id IN (__[POSTCOMPILE_ids]) AND tasks.status = 'completed' AND tasks.worker_id = :owner_worker_id::VARCHAR;

-- ==== outcomes._RECORDED_ONE
-- sqlite
SELECT tasks.id
FROM tasks
WHERE tasks.id = :id AND tasks.status = 'completed' AND tasks.worker_id = :owner_worker_id;
-- postgresql
SELECT tasks.id
FROM tasks
WHERE tasks.id = :id::BIGINT AND tasks.status = 'completed' AND tasks.worker_id = :owner_worker_id::VARCHAR;

-- ==== dialect._ADVISORY_LOCK
-- sqlite and postgresql
SELECT pg_advisory_xact_lock(:key);

-- ==== dialect._ADVISORY_TRY_LOCK
-- sqlite and postgresql
SELECT pg_try_advisory_xact_lock(:key);

-- ======== Statements the store's builders make, one per shape

-- ==== claim._claim_statement(by_queue=False, capped=None, avoiding=False)
-- sqlite
WITH candidates AS
(SELECT tasks.id AS id
FROM tasks
WHERE tasks.status = 'pending' AND tasks.run_after <= :now ORDER BY tasks.priority DESC, tasks.run_after, tasks.id
 LIMIT :limit OFFSET 0)
 UPDATE tasks SET status='running', worker_id=:worker_id, lease_until=:lease_until, cancel_requested=0, started_at=NULL
    FROM candidates WHERE tasks.id = candidates.id AND tasks.status = 'pending' RETURNING id, name, queue, args, kwargs,
    status, priority, run_after, attempts + 1 AS attempts, max_retries, dedup_key, parent_id, progress,
    progress_message, result, error, error_log, worker_id, lease_until, cancel_requested, timeout, continuation,
    children_total, children_completed, children_failed, children_cancelled, created_at, started_at, finished_at,
    trace_context;
-- postgresql
WITH candidates AS
(SELECT tasks.id AS id
FROM tasks
WHERE tasks.status = 'pending' AND tasks.run_after <= :now::TIMESTAMP WITH TIME ZONE ORDER BY tasks.priority DESC,
    tasks.run_after, tasks.id
 LIMIT :limit FOR UPDATE SKIP LOCKED)
 UPDATE tasks SET status='running', worker_id=:worker_id::VARCHAR, lease_until=:lease_until::TIMESTAMP WITH TIME ZONE,
    cancel_requested=false, started_at=NULL FROM candidates WHERE tasks.id = candidates.id AND tasks.status = 'pending'
    RETURNING tasks.id, tasks.name, tasks.queue, tasks.args, tasks.kwargs, tasks.status, tasks.priority,
    tasks.run_after, tasks.attempts + 1 AS attempts, tasks.max_retries, tasks.dedup_key, tasks.parent_id,
    tasks.progress, tasks.progress_message, tasks.result, tasks.error, tasks.error_log, tasks.worker_id,
    tasks.lease_until, tasks.cancel_requested, tasks.timeout, tasks.continuation, tasks.children_total,
    tasks.children_completed, tasks.children_failed, tasks.children_cancelled, tasks.created_at, tasks.started_at,
    tasks.finished_at, tasks.trace_context;

-- ==== claim._claim_statement(by_queue=False, capped=None, avoiding=True)
-- sqlite
WITH candidates AS
(SELECT tasks.id AS id
FROM tasks
WHERE tasks.status = 'pending' AND tasks.run_after <= :now AND ((tasks.name NOT IN (__[POSTCOMPILE_avoid])) OR
    tasks.run_after <= :avoid_until) ORDER BY tasks.priority DESC, tasks.run_after, tasks.id
 LIMIT :limit OFFSET 0)
 UPDATE tasks SET status='running', worker_id=:worker_id, lease_until=:lease_until, cancel_requested=0, started_at=NULL
    FROM candidates WHERE tasks.id = candidates.id AND tasks.status = 'pending' RETURNING id, name, queue, args, kwargs,
    status, priority, run_after, attempts + 1 AS attempts, max_retries, dedup_key, parent_id, progress,
    progress_message, result, error, error_log, worker_id, lease_until, cancel_requested, timeout, continuation,
    children_total, children_completed, children_failed, children_cancelled, created_at, started_at, finished_at,
    trace_context;
-- postgresql
WITH candidates AS
(SELECT tasks.id AS id
FROM tasks
WHERE tasks.status = 'pending' AND tasks.run_after <= :now::TIMESTAMP WITH TIME ZONE AND ((tasks.name NOT IN
    (__[POSTCOMPILE_avoid])) OR tasks.run_after <= :avoid_until::TIMESTAMP WITH TIME ZONE) ORDER BY tasks.priority DESC,
    tasks.run_after, tasks.id
 LIMIT :limit FOR UPDATE SKIP LOCKED)
 UPDATE tasks SET status='running', worker_id=:worker_id::VARCHAR, lease_until=:lease_until::TIMESTAMP WITH TIME ZONE,
    cancel_requested=false, started_at=NULL FROM candidates WHERE tasks.id = candidates.id AND tasks.status = 'pending'
    RETURNING tasks.id, tasks.name, tasks.queue, tasks.args, tasks.kwargs, tasks.status, tasks.priority,
    tasks.run_after, tasks.attempts + 1 AS attempts, tasks.max_retries, tasks.dedup_key, tasks.parent_id,
    tasks.progress, tasks.progress_message, tasks.result, tasks.error, tasks.error_log, tasks.worker_id,
    tasks.lease_until, tasks.cancel_requested, tasks.timeout, tasks.continuation, tasks.children_total,
    tasks.children_completed, tasks.children_failed, tasks.children_cancelled, tasks.created_at, tasks.started_at,
    tasks.finished_at, tasks.trace_context;

-- ==== claim._claim_statement(by_queue=False, capped=names and queues, avoiding=False)
-- sqlite
WITH candidates AS
(SELECT tasks.id AS id, tasks.name AS name, tasks.queue AS queue
FROM tasks
WHERE tasks.status = 'pending' AND tasks.run_after <= :now ORDER BY tasks.priority DESC, tasks.run_after, tasks.id
 LIMIT :limit OFFSET 0)
 UPDATE tasks SET status='running', worker_id=:worker_id, lease_until=:lease_until, cancel_requested=0, started_at=NULL
    FROM candidates WHERE tasks.id = candidates.id AND tasks.status = 'pending' AND NOT (EXISTS (SELECT 1 AS anon_1
FROM candidates AS capped_ahead
WHERE capped_ahead.name IN ('app.slow') OR capped_ahead.queue IN ('api'))) RETURNING id, name, queue, args, kwargs,
    status, priority, run_after, attempts + 1 AS attempts, max_retries, dedup_key, parent_id, progress,
    progress_message, result, error, error_log, worker_id, lease_until, cancel_requested, timeout, continuation,
    children_total, children_completed, children_failed, children_cancelled, created_at, started_at, finished_at,
    trace_context;
-- postgresql
WITH candidates AS
(SELECT tasks.id AS id, tasks.name AS name, tasks.queue AS queue
FROM tasks
WHERE tasks.status = 'pending' AND tasks.run_after <= :now::TIMESTAMP WITH TIME ZONE ORDER BY tasks.priority DESC,
    tasks.run_after, tasks.id
 LIMIT :limit FOR UPDATE SKIP LOCKED)
 UPDATE tasks SET status='running', worker_id=:worker_id::VARCHAR, lease_until=:lease_until::TIMESTAMP WITH TIME ZONE,
    cancel_requested=false, started_at=NULL FROM candidates WHERE tasks.id = candidates.id AND tasks.status = 'pending'
    AND NOT (EXISTS (SELECT 1 AS anon_1
FROM candidates AS capped_ahead
WHERE capped_ahead.name IN ('app.slow') OR capped_ahead.queue IN ('api'))) RETURNING tasks.id, tasks.name, tasks.queue,
    tasks.args, tasks.kwargs, tasks.status, tasks.priority, tasks.run_after, tasks.attempts + 1 AS attempts,
    tasks.max_retries, tasks.dedup_key, tasks.parent_id, tasks.progress, tasks.progress_message, tasks.result,
    tasks.error, tasks.error_log, tasks.worker_id, tasks.lease_until, tasks.cancel_requested, tasks.timeout,
    tasks.continuation, tasks.children_total, tasks.children_completed, tasks.children_failed, tasks.children_cancelled,
    tasks.created_at, tasks.started_at, tasks.finished_at, tasks.trace_context;

-- ==== claim._claim_statement(by_queue=False, capped=names and queues, avoiding=True)
-- sqlite
WITH candidates AS
(SELECT tasks.id AS id, tasks.name AS name, tasks.queue AS queue
FROM tasks
WHERE tasks.status = 'pending' AND tasks.run_after <= :now AND ((tasks.name NOT IN (__[POSTCOMPILE_avoid])) OR
    tasks.run_after <= :avoid_until) ORDER BY tasks.priority DESC, tasks.run_after, tasks.id
 LIMIT :limit OFFSET 0)
 UPDATE tasks SET status='running', worker_id=:worker_id, lease_until=:lease_until, cancel_requested=0, started_at=NULL
    FROM candidates WHERE tasks.id = candidates.id AND tasks.status = 'pending' AND NOT (EXISTS (SELECT 1 AS anon_1
FROM candidates AS capped_ahead
WHERE capped_ahead.name IN ('app.slow') OR capped_ahead.queue IN ('api'))) RETURNING id, name, queue, args, kwargs,
    status, priority, run_after, attempts + 1 AS attempts, max_retries, dedup_key, parent_id, progress,
    progress_message, result, error, error_log, worker_id, lease_until, cancel_requested, timeout, continuation,
    children_total, children_completed, children_failed, children_cancelled, created_at, started_at, finished_at,
    trace_context;
-- postgresql
WITH candidates AS
(SELECT tasks.id AS id, tasks.name AS name, tasks.queue AS queue
FROM tasks
WHERE tasks.status = 'pending' AND tasks.run_after <= :now::TIMESTAMP WITH TIME ZONE AND ((tasks.name NOT IN
    (__[POSTCOMPILE_avoid])) OR tasks.run_after <= :avoid_until::TIMESTAMP WITH TIME ZONE) ORDER BY tasks.priority DESC,
    tasks.run_after, tasks.id
 LIMIT :limit FOR UPDATE SKIP LOCKED)
 UPDATE tasks SET status='running', worker_id=:worker_id::VARCHAR, lease_until=:lease_until::TIMESTAMP WITH TIME ZONE,
    cancel_requested=false, started_at=NULL FROM candidates WHERE tasks.id = candidates.id AND tasks.status = 'pending'
    AND NOT (EXISTS (SELECT 1 AS anon_1
FROM candidates AS capped_ahead
WHERE capped_ahead.name IN ('app.slow') OR capped_ahead.queue IN ('api'))) RETURNING tasks.id, tasks.name, tasks.queue,
    tasks.args, tasks.kwargs, tasks.status, tasks.priority, tasks.run_after, tasks.attempts + 1 AS attempts,
    tasks.max_retries, tasks.dedup_key, tasks.parent_id, tasks.progress, tasks.progress_message, tasks.result,
    tasks.error, tasks.error_log, tasks.worker_id, tasks.lease_until, tasks.cancel_requested, tasks.timeout,
    tasks.continuation, tasks.children_total, tasks.children_completed, tasks.children_failed, tasks.children_cancelled,
    tasks.created_at, tasks.started_at, tasks.finished_at, tasks.trace_context;

-- ==== claim._claim_statement(by_queue=True, capped=None, avoiding=False)
-- sqlite
WITH candidates AS
(SELECT tasks.id AS id
FROM tasks
WHERE tasks.status = 'pending' AND tasks.run_after <= :now AND tasks.queue IN (__[POSTCOMPILE_queues]) ORDER BY
    tasks.priority DESC, tasks.run_after, tasks.id
 LIMIT :limit OFFSET 0)
 UPDATE tasks SET status='running', worker_id=:worker_id, lease_until=:lease_until, cancel_requested=0, started_at=NULL
    FROM candidates WHERE tasks.id = candidates.id AND tasks.status = 'pending' RETURNING id, name, queue, args, kwargs,
    status, priority, run_after, attempts + 1 AS attempts, max_retries, dedup_key, parent_id, progress,
    progress_message, result, error, error_log, worker_id, lease_until, cancel_requested, timeout, continuation,
    children_total, children_completed, children_failed, children_cancelled, created_at, started_at, finished_at,
    trace_context;
-- postgresql
WITH candidates AS
(SELECT tasks.id AS id
FROM tasks
WHERE tasks.status = 'pending' AND tasks.run_after <= :now::TIMESTAMP WITH TIME ZONE AND tasks.queue IN
    (__[POSTCOMPILE_queues]) ORDER BY tasks.priority DESC, tasks.run_after, tasks.id
 LIMIT :limit FOR UPDATE SKIP LOCKED)
 UPDATE tasks SET status='running', worker_id=:worker_id::VARCHAR, lease_until=:lease_until::TIMESTAMP WITH TIME ZONE,
    cancel_requested=false, started_at=NULL FROM candidates WHERE tasks.id = candidates.id AND tasks.status = 'pending'
    RETURNING tasks.id, tasks.name, tasks.queue, tasks.args, tasks.kwargs, tasks.status, tasks.priority,
    tasks.run_after, tasks.attempts + 1 AS attempts, tasks.max_retries, tasks.dedup_key, tasks.parent_id,
    tasks.progress, tasks.progress_message, tasks.result, tasks.error, tasks.error_log, tasks.worker_id,
    tasks.lease_until, tasks.cancel_requested, tasks.timeout, tasks.continuation, tasks.children_total,
    tasks.children_completed, tasks.children_failed, tasks.children_cancelled, tasks.created_at, tasks.started_at,
    tasks.finished_at, tasks.trace_context;

-- ==== claim._claim_statement(by_queue=True, capped=None, avoiding=True)
-- sqlite
WITH candidates AS
(SELECT tasks.id AS id
FROM tasks
WHERE tasks.status = 'pending' AND tasks.run_after <= :now AND tasks.queue IN (__[POSTCOMPILE_queues]) AND ((tasks.name
    NOT IN (__[POSTCOMPILE_avoid])) OR tasks.run_after <= :avoid_until) ORDER BY tasks.priority DESC, tasks.run_after,
    tasks.id
 LIMIT :limit OFFSET 0)
 UPDATE tasks SET status='running', worker_id=:worker_id, lease_until=:lease_until, cancel_requested=0, started_at=NULL
    FROM candidates WHERE tasks.id = candidates.id AND tasks.status = 'pending' RETURNING id, name, queue, args, kwargs,
    status, priority, run_after, attempts + 1 AS attempts, max_retries, dedup_key, parent_id, progress,
    progress_message, result, error, error_log, worker_id, lease_until, cancel_requested, timeout, continuation,
    children_total, children_completed, children_failed, children_cancelled, created_at, started_at, finished_at,
    trace_context;
-- postgresql
WITH candidates AS
(SELECT tasks.id AS id
FROM tasks
WHERE tasks.status = 'pending' AND tasks.run_after <= :now::TIMESTAMP WITH TIME ZONE AND tasks.queue IN
    (__[POSTCOMPILE_queues]) AND ((tasks.name NOT IN (__[POSTCOMPILE_avoid])) OR tasks.run_after <=
    :avoid_until::TIMESTAMP WITH TIME ZONE) ORDER BY tasks.priority DESC, tasks.run_after, tasks.id
 LIMIT :limit FOR UPDATE SKIP LOCKED)
 UPDATE tasks SET status='running', worker_id=:worker_id::VARCHAR, lease_until=:lease_until::TIMESTAMP WITH TIME ZONE,
    cancel_requested=false, started_at=NULL FROM candidates WHERE tasks.id = candidates.id AND tasks.status = 'pending'
    RETURNING tasks.id, tasks.name, tasks.queue, tasks.args, tasks.kwargs, tasks.status, tasks.priority,
    tasks.run_after, tasks.attempts + 1 AS attempts, tasks.max_retries, tasks.dedup_key, tasks.parent_id,
    tasks.progress, tasks.progress_message, tasks.result, tasks.error, tasks.error_log, tasks.worker_id,
    tasks.lease_until, tasks.cancel_requested, tasks.timeout, tasks.continuation, tasks.children_total,
    tasks.children_completed, tasks.children_failed, tasks.children_cancelled, tasks.created_at, tasks.started_at,
    tasks.finished_at, tasks.trace_context;

-- ==== claim._claim_statement(by_queue=True, capped=names and queues, avoiding=False)
-- sqlite
WITH candidates AS
(SELECT tasks.id AS id, tasks.name AS name, tasks.queue AS queue
FROM tasks
WHERE tasks.status = 'pending' AND tasks.run_after <= :now AND tasks.queue IN (__[POSTCOMPILE_queues]) ORDER BY
    tasks.priority DESC, tasks.run_after, tasks.id
 LIMIT :limit OFFSET 0)
 UPDATE tasks SET status='running', worker_id=:worker_id, lease_until=:lease_until, cancel_requested=0, started_at=NULL
    FROM candidates WHERE tasks.id = candidates.id AND tasks.status = 'pending' AND NOT (EXISTS (SELECT 1 AS anon_1
FROM candidates AS capped_ahead
WHERE capped_ahead.name IN ('app.slow') OR capped_ahead.queue IN ('api'))) RETURNING id, name, queue, args, kwargs,
    status, priority, run_after, attempts + 1 AS attempts, max_retries, dedup_key, parent_id, progress,
    progress_message, result, error, error_log, worker_id, lease_until, cancel_requested, timeout, continuation,
    children_total, children_completed, children_failed, children_cancelled, created_at, started_at, finished_at,
    trace_context;
-- postgresql
WITH candidates AS
(SELECT tasks.id AS id, tasks.name AS name, tasks.queue AS queue
FROM tasks
WHERE tasks.status = 'pending' AND tasks.run_after <= :now::TIMESTAMP WITH TIME ZONE AND tasks.queue IN
    (__[POSTCOMPILE_queues]) ORDER BY tasks.priority DESC, tasks.run_after, tasks.id
 LIMIT :limit FOR UPDATE SKIP LOCKED)
 UPDATE tasks SET status='running', worker_id=:worker_id::VARCHAR, lease_until=:lease_until::TIMESTAMP WITH TIME ZONE,
    cancel_requested=false, started_at=NULL FROM candidates WHERE tasks.id = candidates.id AND tasks.status = 'pending'
    AND NOT (EXISTS (SELECT 1 AS anon_1
FROM candidates AS capped_ahead
WHERE capped_ahead.name IN ('app.slow') OR capped_ahead.queue IN ('api'))) RETURNING tasks.id, tasks.name, tasks.queue,
    tasks.args, tasks.kwargs, tasks.status, tasks.priority, tasks.run_after, tasks.attempts + 1 AS attempts,
    tasks.max_retries, tasks.dedup_key, tasks.parent_id, tasks.progress, tasks.progress_message, tasks.result,
    tasks.error, tasks.error_log, tasks.worker_id, tasks.lease_until, tasks.cancel_requested, tasks.timeout,
    tasks.continuation, tasks.children_total, tasks.children_completed, tasks.children_failed, tasks.children_cancelled,
    tasks.created_at, tasks.started_at, tasks.finished_at, tasks.trace_context;

-- ==== claim._claim_statement(by_queue=True, capped=names and queues, avoiding=True)
-- sqlite
WITH candidates AS
(SELECT tasks.id AS id, tasks.name AS name, tasks.queue AS queue
FROM tasks
WHERE tasks.status = 'pending' AND tasks.run_after <= :now AND tasks.queue IN (__[POSTCOMPILE_queues]) AND ((tasks.name
    NOT IN (__[POSTCOMPILE_avoid])) OR tasks.run_after <= :avoid_until) ORDER BY tasks.priority DESC, tasks.run_after,
    tasks.id
 LIMIT :limit OFFSET 0)
 UPDATE tasks SET status='running', worker_id=:worker_id, lease_until=:lease_until, cancel_requested=0, started_at=NULL
    FROM candidates WHERE tasks.id = candidates.id AND tasks.status = 'pending' AND NOT (EXISTS (SELECT 1 AS anon_1
FROM candidates AS capped_ahead
WHERE capped_ahead.name IN ('app.slow') OR capped_ahead.queue IN ('api'))) RETURNING id, name, queue, args, kwargs,
    status, priority, run_after, attempts + 1 AS attempts, max_retries, dedup_key, parent_id, progress,
    progress_message, result, error, error_log, worker_id, lease_until, cancel_requested, timeout, continuation,
    children_total, children_completed, children_failed, children_cancelled, created_at, started_at, finished_at,
    trace_context;
-- postgresql
WITH candidates AS
(SELECT tasks.id AS id, tasks.name AS name, tasks.queue AS queue
FROM tasks
WHERE tasks.status = 'pending' AND tasks.run_after <= :now::TIMESTAMP WITH TIME ZONE AND tasks.queue IN
    (__[POSTCOMPILE_queues]) AND ((tasks.name NOT IN (__[POSTCOMPILE_avoid])) OR tasks.run_after <=
    :avoid_until::TIMESTAMP WITH TIME ZONE) ORDER BY tasks.priority DESC, tasks.run_after, tasks.id
 LIMIT :limit FOR UPDATE SKIP LOCKED)
 UPDATE tasks SET status='running', worker_id=:worker_id::VARCHAR, lease_until=:lease_until::TIMESTAMP WITH TIME ZONE,
    cancel_requested=false, started_at=NULL FROM candidates WHERE tasks.id = candidates.id AND tasks.status = 'pending'
    AND NOT (EXISTS (SELECT 1 AS anon_1
FROM candidates AS capped_ahead
WHERE capped_ahead.name IN ('app.slow') OR capped_ahead.queue IN ('api'))) RETURNING tasks.id, tasks.name, tasks.queue,
    tasks.args, tasks.kwargs, tasks.status, tasks.priority, tasks.run_after, tasks.attempts + 1 AS attempts,
    tasks.max_retries, tasks.dedup_key, tasks.parent_id, tasks.progress, tasks.progress_message, tasks.result,
    tasks.error, tasks.error_log, tasks.worker_id, tasks.lease_until, tasks.cancel_requested, tasks.timeout,
    tasks.continuation, tasks.children_total, tasks.children_completed, tasks.children_failed, tasks.children_cancelled,
    tasks.created_at, tasks.started_at, tasks.finished_at, tasks.trace_context;

-- ==== claim._capped_candidates(queues=None, full_names={}, full_queues={}, avoiding=False)
-- sqlite
SELECT tasks.id, tasks.name, tasks.queue
FROM tasks
WHERE tasks.status = 'pending' AND tasks.run_after <= :now ORDER BY tasks.priority DESC, tasks.run_after, tasks.id
 LIMIT :limit OFFSET 0;
-- postgresql
SELECT tasks.id, tasks.name, tasks.queue
FROM tasks
WHERE tasks.status = 'pending' AND tasks.run_after <= :now::TIMESTAMP WITH TIME ZONE ORDER BY tasks.priority DESC,
    tasks.run_after, tasks.id
 LIMIT :limit FOR UPDATE SKIP LOCKED;

-- ==== claim._capped_candidates(queues=[api, default], full_names={app.slow}, full_queues={api}, avoiding=True)
-- sqlite
SELECT tasks.id, tasks.name, tasks.queue
FROM tasks
WHERE tasks.status = 'pending' AND tasks.run_after <= :now AND ((tasks.name NOT IN (__[POSTCOMPILE_avoid])) OR
    tasks.run_after <= :avoid_until) AND tasks.queue IN (__[POSTCOMPILE_queue_1]) AND (tasks.name NOT IN
    (__[POSTCOMPILE_name_1])) AND (tasks.queue NOT IN (__[POSTCOMPILE_queue_2])) ORDER BY tasks.priority DESC,
    tasks.run_after, tasks.id
 LIMIT :limit OFFSET 0;
-- postgresql
SELECT tasks.id, tasks.name, tasks.queue
FROM tasks
WHERE tasks.status = 'pending' AND tasks.run_after <= :now::TIMESTAMP WITH TIME ZONE AND ((tasks.name NOT IN
    (__[POSTCOMPILE_avoid])) OR tasks.run_after <= :avoid_until::TIMESTAMP WITH TIME ZONE) AND tasks.queue IN
    (__[POSTCOMPILE_queue_1]) AND (tasks.name NOT IN (__[POSTCOMPILE_name_1])) AND (tasks.queue NOT IN
    (__[POSTCOMPILE_queue_2])) ORDER BY tasks.priority DESC, tasks.run_after, tasks.id
 LIMIT :limit FOR UPDATE SKIP LOCKED;

-- ==== outcomes._complete_statement(check_worker=False, check_attempt=False)
-- sqlite
UPDATE tasks SET status='completed', attempts=CASE WHEN (tasks.started_at IS NULL) THEN tasks.attempts + 1 ELSE
    tasks.attempts END, progress=100.0, result=:result, lease_until=NULL, cancel_requested=0,
    started_at=coalesce(tasks.started_at, :started), finished_at=:now WHERE tasks.id = :owner_task_id AND tasks.status =
    'running' RETURNING parent_id, continuation, queue, priority;
-- postgresql
UPDATE tasks SET status='completed', attempts=CASE WHEN (tasks.started_at IS NULL) THEN tasks.attempts + 1 ELSE
    tasks.attempts END, progress=100.0, result=:result::JSON, lease_until=NULL, cancel_requested=false,
    started_at=coalesce(tasks.started_at, :started), finished_at=:now::TIMESTAMP WITH TIME ZONE WHERE tasks.id =
    :owner_task_id::BIGINT AND tasks.status = 'running' RETURNING tasks.parent_id, tasks.continuation, tasks.queue,
    tasks.priority;

-- ==== outcomes._complete_statement(check_worker=True, check_attempt=False)
-- sqlite
UPDATE tasks SET status='completed', attempts=CASE WHEN (tasks.started_at IS NULL) THEN tasks.attempts + 1 ELSE
    tasks.attempts END, progress=100.0, result=:result, lease_until=NULL, cancel_requested=0,
    started_at=coalesce(tasks.started_at, :started), finished_at=:now WHERE tasks.id = :owner_task_id AND tasks.status =
    'running' AND tasks.worker_id = :owner_worker_id RETURNING parent_id, continuation, queue, priority;
-- postgresql
UPDATE tasks SET status='completed', attempts=CASE WHEN (tasks.started_at IS NULL) THEN tasks.attempts + 1 ELSE
    tasks.attempts END, progress=100.0, result=:result::JSON, lease_until=NULL, cancel_requested=false,
    started_at=coalesce(tasks.started_at, :started), finished_at=:now::TIMESTAMP WITH TIME ZONE WHERE tasks.id =
    :owner_task_id::BIGINT AND tasks.status = 'running' AND tasks.worker_id = :owner_worker_id::VARCHAR RETURNING
    tasks.parent_id, tasks.continuation, tasks.queue, tasks.priority;

-- ==== outcomes._complete_statement(check_worker=False, check_attempt=True)
-- sqlite
UPDATE tasks SET status='completed', attempts=CASE WHEN (tasks.started_at IS NULL) THEN tasks.attempts + 1 ELSE
    tasks.attempts END, progress=100.0, result=:result, lease_until=NULL, cancel_requested=0,
    started_at=coalesce(tasks.started_at, :started), finished_at=:now WHERE tasks.id = :owner_task_id AND tasks.status =
    'running' AND tasks.attempts BETWEEN :owner_attempt - 1 AND :owner_attempt RETURNING parent_id, continuation, queue,
    priority;
-- postgresql
UPDATE tasks SET status='completed', attempts=CASE WHEN (tasks.started_at IS NULL) THEN tasks.attempts + 1 ELSE
    tasks.attempts END, progress=100.0, result=:result::JSON, lease_until=NULL, cancel_requested=false,
    started_at=coalesce(tasks.started_at, :started), finished_at=:now::TIMESTAMP WITH TIME ZONE WHERE tasks.id =
    :owner_task_id::BIGINT AND tasks.status = 'running' AND tasks.attempts BETWEEN :owner_attempt::INTEGER - 1 AND
    :owner_attempt::INTEGER RETURNING tasks.parent_id, tasks.continuation, tasks.queue, tasks.priority;

-- ==== outcomes._complete_statement(check_worker=True, check_attempt=True)
-- sqlite
UPDATE tasks SET status='completed', attempts=CASE WHEN (tasks.started_at IS NULL) THEN tasks.attempts + 1 ELSE
    tasks.attempts END, progress=100.0, result=:result, lease_until=NULL, cancel_requested=0,
    started_at=coalesce(tasks.started_at, :started), finished_at=:now WHERE tasks.id = :owner_task_id AND tasks.status =
    'running' AND tasks.worker_id = :owner_worker_id AND tasks.attempts BETWEEN :owner_attempt - 1 AND :owner_attempt
    RETURNING parent_id, continuation, queue, priority;
-- postgresql
UPDATE tasks SET status='completed', attempts=CASE WHEN (tasks.started_at IS NULL) THEN tasks.attempts + 1 ELSE
    tasks.attempts END, progress=100.0, result=:result::JSON, lease_until=NULL, cancel_requested=false,
    started_at=coalesce(tasks.started_at, :started), finished_at=:now::TIMESTAMP WITH TIME ZONE WHERE tasks.id =
    :owner_task_id::BIGINT AND tasks.status = 'running' AND tasks.worker_id = :owner_worker_id::VARCHAR AND
    tasks.attempts BETWEEN :owner_attempt::INTEGER - 1 AND :owner_attempt::INTEGER RETURNING tasks.parent_id,
    tasks.continuation, tasks.queue, tasks.priority;

-- ==== outcomes._cancelled_statement(check_worker=False, check_attempt=False)
-- sqlite
UPDATE tasks SET status='cancelled', attempts=CASE WHEN (tasks.started_at IS NULL) THEN tasks.attempts + 1 ELSE
    tasks.attempts END, error=:reason, lease_until=NULL, started_at=coalesce(tasks.started_at, :started),
    finished_at=:now WHERE tasks.id = :owner_task_id AND tasks.status = 'running' RETURNING parent_id, continuation,
    queue, priority;
-- postgresql
UPDATE tasks SET status='cancelled', attempts=CASE WHEN (tasks.started_at IS NULL) THEN tasks.attempts + 1 ELSE
    tasks.attempts END, error=:reason::VARCHAR, lease_until=NULL, started_at=coalesce(tasks.started_at, :started),
    finished_at=:now::TIMESTAMP WITH TIME ZONE WHERE tasks.id = :owner_task_id::BIGINT AND tasks.status = 'running'
    RETURNING tasks.parent_id, tasks.continuation, tasks.queue, tasks.priority;

-- ==== outcomes._cancelled_statement(check_worker=True, check_attempt=False)
-- sqlite
UPDATE tasks SET status='cancelled', attempts=CASE WHEN (tasks.started_at IS NULL) THEN tasks.attempts + 1 ELSE
    tasks.attempts END, error=:reason, lease_until=NULL, started_at=coalesce(tasks.started_at, :started),
    finished_at=:now WHERE tasks.id = :owner_task_id AND tasks.status = 'running' AND tasks.worker_id = :owner_worker_id
    RETURNING parent_id, continuation, queue, priority;
-- postgresql
UPDATE tasks SET status='cancelled', attempts=CASE WHEN (tasks.started_at IS NULL) THEN tasks.attempts + 1 ELSE
    tasks.attempts END, error=:reason::VARCHAR, lease_until=NULL, started_at=coalesce(tasks.started_at, :started),
    finished_at=:now::TIMESTAMP WITH TIME ZONE WHERE tasks.id = :owner_task_id::BIGINT AND tasks.status = 'running' AND
    tasks.worker_id = :owner_worker_id::VARCHAR RETURNING tasks.parent_id, tasks.continuation, tasks.queue,
    tasks.priority;

-- ==== outcomes._cancelled_statement(check_worker=False, check_attempt=True)
-- sqlite
UPDATE tasks SET status='cancelled', attempts=CASE WHEN (tasks.started_at IS NULL) THEN tasks.attempts + 1 ELSE
    tasks.attempts END, error=:reason, lease_until=NULL, started_at=coalesce(tasks.started_at, :started),
    finished_at=:now WHERE tasks.id = :owner_task_id AND tasks.status = 'running' AND tasks.attempts BETWEEN
    :owner_attempt - 1 AND :owner_attempt RETURNING parent_id, continuation, queue, priority;
-- postgresql
UPDATE tasks SET status='cancelled', attempts=CASE WHEN (tasks.started_at IS NULL) THEN tasks.attempts + 1 ELSE
    tasks.attempts END, error=:reason::VARCHAR, lease_until=NULL, started_at=coalesce(tasks.started_at, :started),
    finished_at=:now::TIMESTAMP WITH TIME ZONE WHERE tasks.id = :owner_task_id::BIGINT AND tasks.status = 'running' AND
    tasks.attempts BETWEEN :owner_attempt::INTEGER - 1 AND :owner_attempt::INTEGER RETURNING tasks.parent_id,
    tasks.continuation, tasks.queue, tasks.priority;

-- ==== outcomes._cancelled_statement(check_worker=True, check_attempt=True)
-- sqlite
UPDATE tasks SET status='cancelled', attempts=CASE WHEN (tasks.started_at IS NULL) THEN tasks.attempts + 1 ELSE
    tasks.attempts END, error=:reason, lease_until=NULL, started_at=coalesce(tasks.started_at, :started),
    finished_at=:now WHERE tasks.id = :owner_task_id AND tasks.status = 'running' AND tasks.worker_id = :owner_worker_id
    AND tasks.attempts BETWEEN :owner_attempt - 1 AND :owner_attempt RETURNING parent_id, continuation, queue, priority;
-- postgresql
UPDATE tasks SET status='cancelled', attempts=CASE WHEN (tasks.started_at IS NULL) THEN tasks.attempts + 1 ELSE
    tasks.attempts END, error=:reason::VARCHAR, lease_until=NULL, started_at=coalesce(tasks.started_at, :started),
    finished_at=:now::TIMESTAMP WITH TIME ZONE WHERE tasks.id = :owner_task_id::BIGINT AND tasks.status = 'running' AND
    tasks.worker_id = :owner_worker_id::VARCHAR AND tasks.attempts BETWEEN :owner_attempt::INTEGER - 1 AND
    :owner_attempt::INTEGER RETURNING tasks.parent_id, tasks.continuation, tasks.queue, tasks.priority;

-- ==== outcomes._failing_row_statement(check_worker=False, check_attempt=False)
-- sqlite
SELECT tasks.name, tasks.attempts, tasks.started_at, tasks.max_retries, tasks.error_log, tasks.worker_id,
    tasks.cancel_requested, tasks.parent_id, tasks.continuation, tasks.queue, tasks.priority
FROM tasks
WHERE tasks.id = :owner_task_id AND tasks.status = 'running';
-- postgresql
SELECT tasks.name, tasks.attempts, tasks.started_at, tasks.max_retries, tasks.error_log, tasks.worker_id,
    tasks.cancel_requested, tasks.parent_id, tasks.continuation, tasks.queue, tasks.priority
FROM tasks
WHERE tasks.id = :owner_task_id::BIGINT AND tasks.status = 'running' FOR UPDATE;

-- ==== outcomes._failing_row_statement(check_worker=True, check_attempt=False)
-- sqlite
SELECT tasks.name, tasks.attempts, tasks.started_at, tasks.max_retries, tasks.error_log, tasks.worker_id,
    tasks.cancel_requested, tasks.parent_id, tasks.continuation, tasks.queue, tasks.priority
FROM tasks
WHERE tasks.id = :owner_task_id AND tasks.status = 'running' AND tasks.worker_id = :owner_worker_id;
-- postgresql
SELECT tasks.name, tasks.attempts, tasks.started_at, tasks.max_retries, tasks.error_log, tasks.worker_id,
    tasks.cancel_requested, tasks.parent_id, tasks.continuation, tasks.queue, tasks.priority
FROM tasks
WHERE tasks.id = :owner_task_id::BIGINT AND tasks.status = 'running' AND tasks.worker_id = :owner_worker_id::VARCHAR FOR
    UPDATE;

-- ==== outcomes._failing_row_statement(check_worker=False, check_attempt=True)
-- sqlite
SELECT tasks.name, tasks.attempts, tasks.started_at, tasks.max_retries, tasks.error_log, tasks.worker_id,
    tasks.cancel_requested, tasks.parent_id, tasks.continuation, tasks.queue, tasks.priority
FROM tasks
WHERE tasks.id = :owner_task_id AND tasks.status = 'running' AND tasks.attempts BETWEEN :owner_attempt - 1 AND
    :owner_attempt;
-- postgresql
SELECT tasks.name, tasks.attempts, tasks.started_at, tasks.max_retries, tasks.error_log, tasks.worker_id,
    tasks.cancel_requested, tasks.parent_id, tasks.continuation, tasks.queue, tasks.priority
FROM tasks
WHERE tasks.id = :owner_task_id::BIGINT AND tasks.status = 'running' AND tasks.attempts BETWEEN :owner_attempt::INTEGER
    - 1 AND :owner_attempt::INTEGER FOR UPDATE;

-- ==== outcomes._failing_row_statement(check_worker=True, check_attempt=True)
-- sqlite
SELECT tasks.name, tasks.attempts, tasks.started_at, tasks.max_retries, tasks.error_log, tasks.worker_id,
    tasks.cancel_requested, tasks.parent_id, tasks.continuation, tasks.queue, tasks.priority
FROM tasks
WHERE tasks.id = :owner_task_id AND tasks.status = 'running' AND tasks.worker_id = :owner_worker_id AND tasks.attempts
    BETWEEN :owner_attempt - 1 AND :owner_attempt;
-- postgresql
SELECT tasks.name, tasks.attempts, tasks.started_at, tasks.max_retries, tasks.error_log, tasks.worker_id,
    tasks.cancel_requested, tasks.parent_id, tasks.continuation, tasks.queue, tasks.priority
FROM tasks
WHERE tasks.id = :owner_task_id::BIGINT AND tasks.status = 'running' AND tasks.worker_id = :owner_worker_id::VARCHAR AND
    tasks.attempts BETWEEN :owner_attempt::INTEGER - 1 AND :owner_attempt::INTEGER FOR UPDATE;

-- ==== workflow._count_children_statement(completed)
-- sqlite
UPDATE tasks SET progress=CASE WHEN (tasks.children_total > 0) THEN (100.0 * (tasks.children_completed +
    tasks.children_failed + tasks.children_cancelled + :finished_count)) / (tasks.children_total + 0.0) ELSE 0.0 END,
    children_completed=(tasks.children_completed + :finished_count) WHERE tasks.id = :counted_parent_id AND tasks.status
    = 'waiting_for_children' RETURNING children_total, children_completed, children_failed, children_cancelled,
    cancel_requested, parent_id, continuation, queue, priority;
-- postgresql
UPDATE tasks SET progress=CASE WHEN (tasks.children_total > 0) THEN (100.0 * (tasks.children_completed +
    tasks.children_failed + tasks.children_cancelled + :finished_count::INTEGER)) / CAST(tasks.children_total AS
    NUMERIC) ELSE 0.0 END, children_completed=(tasks.children_completed + :finished_count::INTEGER) WHERE tasks.id =
    :counted_parent_id::BIGINT AND tasks.status = 'waiting_for_children' RETURNING tasks.children_total,
    tasks.children_completed, tasks.children_failed, tasks.children_cancelled, tasks.cancel_requested, tasks.parent_id,
    tasks.continuation, tasks.queue, tasks.priority;

-- ==== workflow._count_children_statement(failed)
-- sqlite
UPDATE tasks SET progress=CASE WHEN (tasks.children_total > 0) THEN (100.0 * (tasks.children_completed +
    tasks.children_failed + tasks.children_cancelled + :finished_count)) / (tasks.children_total + 0.0) ELSE 0.0 END,
    children_failed=(tasks.children_failed + :finished_count) WHERE tasks.id = :counted_parent_id AND tasks.status =
    'waiting_for_children' RETURNING children_total, children_completed, children_failed, children_cancelled,
    cancel_requested, parent_id, continuation, queue, priority;
-- postgresql
UPDATE tasks SET progress=CASE WHEN (tasks.children_total > 0) THEN (100.0 * (tasks.children_completed +
    tasks.children_failed + tasks.children_cancelled + :finished_count::INTEGER)) / CAST(tasks.children_total AS
    NUMERIC) ELSE 0.0 END, children_failed=(tasks.children_failed + :finished_count::INTEGER) WHERE tasks.id =
    :counted_parent_id::BIGINT AND tasks.status = 'waiting_for_children' RETURNING tasks.children_total,
    tasks.children_completed, tasks.children_failed, tasks.children_cancelled, tasks.cancel_requested, tasks.parent_id,
    tasks.continuation, tasks.queue, tasks.priority;

-- ==== workflow._count_children_statement(cancelled)
-- sqlite
UPDATE tasks SET progress=CASE WHEN (tasks.children_total > 0) THEN (100.0 * (tasks.children_completed +
    tasks.children_failed + tasks.children_cancelled + :finished_count)) / (tasks.children_total + 0.0) ELSE 0.0 END,
    children_cancelled=(tasks.children_cancelled + :finished_count) WHERE tasks.id = :counted_parent_id AND tasks.status
    = 'waiting_for_children' RETURNING children_total, children_completed, children_failed, children_cancelled,
    cancel_requested, parent_id, continuation, queue, priority;
-- postgresql
UPDATE tasks SET progress=CASE WHEN (tasks.children_total > 0) THEN (100.0 * (tasks.children_completed +
    tasks.children_failed + tasks.children_cancelled + :finished_count::INTEGER)) / CAST(tasks.children_total AS
    NUMERIC) ELSE 0.0 END, children_cancelled=(tasks.children_cancelled + :finished_count::INTEGER) WHERE tasks.id =
    :counted_parent_id::BIGINT AND tasks.status = 'waiting_for_children' RETURNING tasks.children_total,
    tasks.children_completed, tasks.children_failed, tasks.children_cancelled, tasks.cancel_requested, tasks.parent_id,
    tasks.continuation, tasks.queue, tasks.priority;

-- ==== metrics._finished_rows_query(after=None, until=None, limit=None)
-- sqlite and postgresql
SELECT tasks.queue, tasks.name, tasks.status, tasks.started_at, tasks.finished_at
FROM tasks
WHERE tasks.status IN ('cancelled', 'completed', 'failed') ORDER BY tasks.finished_at;

-- ==== metrics._finished_rows_query(after=T, until=T, limit=20000)
-- sqlite
SELECT tasks.queue, tasks.name, tasks.status, tasks.started_at, tasks.finished_at
FROM tasks
WHERE tasks.status IN ('cancelled', 'completed', 'failed') AND tasks.finished_at > :finished_at_1 AND tasks.finished_at
    <= :finished_at_2 ORDER BY tasks.finished_at
 LIMIT 20000 OFFSET 0;
-- postgresql
SELECT tasks.queue, tasks.name, tasks.status, tasks.started_at, tasks.finished_at
FROM tasks
WHERE tasks.status IN ('cancelled', 'completed', 'failed') AND tasks.finished_at > :finished_at_1::TIMESTAMP WITH TIME
    ZONE AND tasks.finished_at <= :finished_at_2::TIMESTAMP WITH TIME ZONE ORDER BY tasks.finished_at
 LIMIT 20000;

-- ==== metrics._counts_query(watermark=T)
-- sqlite
SELECT anon_1.queue, anon_1.status, anon_1.n, (SELECT rollup_state.watermark
FROM rollup_state
WHERE rollup_state.id = 1) AS w
FROM (SELECT tasks.queue AS queue, tasks.status AS status, count(*) AS n
FROM tasks
WHERE tasks.status = 'pending' GROUP BY tasks.queue, tasks.status UNION ALL SELECT tasks.queue AS queue, tasks.status AS
    status, count(*) AS n
FROM tasks
WHERE tasks.status = 'running' GROUP BY tasks.queue, tasks.status UNION ALL SELECT tasks.queue AS queue, tasks.status AS
    status, count(*) AS n
FROM tasks
WHERE tasks.status = 'waiting_for_children' AND status NOT IN ('pending', 'running') GROUP BY tasks.queue, tasks.status
    UNION ALL SELECT tasks.queue AS queue, tasks.status AS status, count(*) AS n
FROM tasks
WHERE tasks.status IN ('cancelled', 'completed', 'failed') AND tasks.finished_at > :since GROUP BY tasks.queue,
    tasks.status UNION ALL SELECT task_counts.queue AS queue, task_counts.status AS status, task_counts.n AS n
FROM task_counts) AS anon_1;
-- postgresql
SELECT anon_1.queue, anon_1.status, anon_1.n, (SELECT rollup_state.watermark
FROM rollup_state
WHERE rollup_state.id = 1) AS w
FROM (SELECT tasks.queue AS queue, tasks.status AS status, count(*) AS n
FROM tasks
WHERE tasks.status = 'pending' GROUP BY tasks.queue, tasks.status UNION ALL SELECT tasks.queue AS queue, tasks.status AS
    status, count(*) AS n
FROM tasks
WHERE tasks.status = 'running' GROUP BY tasks.queue, tasks.status UNION ALL SELECT tasks.queue AS queue, tasks.status AS
    status, count(*) AS n
FROM tasks
WHERE tasks.status = 'waiting_for_children' AND status NOT IN ('pending', 'running') GROUP BY tasks.queue, tasks.status
    UNION ALL SELECT tasks.queue AS queue, tasks.status AS status, count(*) AS n
FROM tasks
WHERE tasks.status IN ('cancelled', 'completed', 'failed') AND tasks.finished_at > :since::TIMESTAMP WITH TIME ZONE
    GROUP BY tasks.queue, tasks.status UNION ALL SELECT task_counts.queue AS queue, task_counts.status AS status,
    task_counts.n AS n
FROM task_counts) AS anon_1;

-- ==== dialect.SqliteDialect.insert_unless_active(tasks)
-- sqlite
INSERT INTO tasks (id, name, queue, args, kwargs, status, priority, run_after, attempts, max_retries, dedup_key,
    parent_id, progress, progress_message, result, error, error_log, worker_id, lease_until, cancel_requested, timeout,
    continuation, children_total, children_completed, children_failed, children_cancelled, created_at, started_at,
    finished_at, trace_context) VALUES (:id, :name, :queue, :args, :kwargs, :status, :priority, :run_after, :attempts,
    :max_retries, :dedup_key, :parent_id, :progress, :progress_message, :result, :error, :error_log, :worker_id,
    :lease_until, :cancel_requested, :timeout, :continuation, :children_total, :children_completed, :children_failed,
    :children_cancelled, :created_at, :started_at, :finished_at, :trace_context) ON CONFLICT (dedup_key) WHERE dedup_key
    IS NOT NULL AND status IN ('pending', 'running', 'waiting_for_children') DO NOTHING RETURNING id;

-- ==== dialect.SqliteDialect.insert_if_absent(schedules)
-- sqlite
INSERT INTO schedules (name, spec_hash, task_id, run_after, anchor) VALUES (:name, :spec_hash, :task_id, :run_after,
    :anchor) ON CONFLICT DO NOTHING;

-- ==== dialect.PostgresDialect.insert_unless_active(tasks)
-- postgresql
INSERT INTO tasks (id, name, queue, args, kwargs, status, priority, run_after, attempts, max_retries, dedup_key,
    parent_id, progress, progress_message, result, error, error_log, worker_id, lease_until, cancel_requested, timeout,
    continuation, children_total, children_completed, children_failed, children_cancelled, created_at, started_at,
    finished_at, trace_context) VALUES (:id::BIGINT, :name::VARCHAR, :queue::VARCHAR, :args::JSON, :kwargs::JSON,
    :status::VARCHAR, :priority::INTEGER, :run_after::TIMESTAMP WITH TIME ZONE, :attempts::INTEGER,
    :max_retries::INTEGER, :dedup_key::VARCHAR, :parent_id::BIGINT, :progress, :progress_message::VARCHAR,
    :result::JSON, :error::VARCHAR, :error_log::JSON, :worker_id::VARCHAR, :lease_until::TIMESTAMP WITH TIME ZONE,
    :cancel_requested, :timeout, :continuation::VARCHAR, :children_total::INTEGER, :children_completed::INTEGER,
    :children_failed::INTEGER, :children_cancelled::INTEGER, :created_at::TIMESTAMP WITH TIME ZONE,
    :started_at::TIMESTAMP WITH TIME ZONE, :finished_at::TIMESTAMP WITH TIME ZONE, :trace_context::VARCHAR) ON CONFLICT
    (dedup_key) WHERE dedup_key IS NOT NULL AND status IN ('pending', 'running', 'waiting_for_children') DO NOTHING
    RETURNING tasks.id;

-- ==== dialect.PostgresDialect.insert_if_absent(schedules)
-- postgresql
INSERT INTO schedules (name, spec_hash, task_id, run_after, anchor) VALUES (:name::VARCHAR, :spec_hash::VARCHAR,
    :task_id::BIGINT, :run_after::TIMESTAMP WITH TIME ZONE, :anchor::TIMESTAMP WITH TIME ZONE) ON CONFLICT DO NOTHING;

-- ======== The SQLite driver path (taskq/store/hot.py)

-- ==== hot.PlainInsert columns ()
-- sqlite driver, ? binds in order: name, queue, args, kwargs, priority, run_after, max_retries, created_at
INSERT INTO tasks (name, queue, args, kwargs, priority, run_after, max_retries, created_at) VALUES (?, ?, ?, ?, ?, ?, ?,
    ?);

-- ==== hot.PlainInsert columns ('dedup_key', 'parent_id', 'timeout', 'continuation', 'trace_context')
-- sqlite driver, ? binds in order: name, queue, args, kwargs, priority, run_after, max_retries, dedup_key, parent_id,
--     timeout, continuation, created_at, trace_context
INSERT INTO tasks (name, queue, args, kwargs, priority, run_after, max_retries, dedup_key, parent_id, timeout,
    continuation, created_at, trace_context) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- ==== claim.ClaimPlans.hot_statements()['complete']
-- sqlite driver, ? binds in order: status, attempts_1, progress, result, lease_until, cancel_requested, started, now,
--     owner_task_id, owner_worker_id, owner_attempt, param_1, owner_attempt
UPDATE tasks SET status=?, attempts=CASE WHEN (tasks.started_at IS NULL) THEN tasks.attempts + ? ELSE tasks.attempts
    END, progress=?, result=?, lease_until=?, cancel_requested=?, started_at=coalesce(tasks.started_at, ?),
    finished_at=? WHERE tasks.id = ? AND tasks.status = 'running' AND tasks.worker_id = ? AND tasks.attempts BETWEEN ? -
    ? AND ?;

-- ==== claim.ClaimPlans.hot_statements()['claim']
-- sqlite driver, ? binds in order: now, limit, param_1, status, worker_id, lease_until, cancel_requested, started_at,
--     attempts_1
WITH candidates AS
(SELECT tasks.id AS id
FROM tasks
WHERE tasks.status = 'pending' AND tasks.run_after <= ? ORDER BY tasks.priority DESC, tasks.run_after, tasks.id
 LIMIT ? OFFSET ?)
 UPDATE tasks SET status=?, worker_id=?, lease_until=?, cancel_requested=?, started_at=? FROM candidates WHERE tasks.id
    = candidates.id AND tasks.status = 'pending' RETURNING id, name, queue, args, kwargs, status, priority, run_after,
    attempts + ? AS attempts, max_retries, dedup_key, parent_id, progress, progress_message, result, error, error_log,
    worker_id, lease_until, cancel_requested, timeout, continuation, children_total, children_completed,
    children_failed, children_cancelled, created_at, started_at, finished_at, trace_context;

-- ==== claim.ClaimPlans.hot_statements()['recorded']
-- sqlite driver, ? binds in order: id, owner_worker_id
SELECT tasks.id
FROM tasks
WHERE tasks.id = ? AND tasks.status = 'completed' AND tasks.worker_id = ?;
