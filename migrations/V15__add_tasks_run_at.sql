-- The time a delayed task was asked to run at (POST /tasks with run_at), kept after its dispatch
-- clears dispatch_due_at so GET /tasks/{id} still shows it. NULL for tasks to run at once and
-- for rows the Python API writes.
ALTER TABLE tasks ADD COLUMN run_at DATETIME(6) NULL;
