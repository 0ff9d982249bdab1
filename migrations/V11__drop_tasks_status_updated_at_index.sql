-- Every status change rewrites updated_at, so this index was maintained on every transition;
-- what used it (the stuck-task sweep, the oldest-PROCESSING gauge) only looks at PENDING and
-- PROCESSING tasks, a small set that idx_tasks_status finds as well. Profiling the pipeline
-- showed MariaDB's CPU as the bottleneck, and index maintenance is a large part of it.
DROP INDEX idx_tasks_status_updated_at ON tasks;
