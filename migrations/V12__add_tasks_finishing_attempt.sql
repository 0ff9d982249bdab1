-- The attempt that finished a task, kept on its row: the worker's finish is then one UPDATE of
-- the task instead of a transaction that also inserts into task_attempts. task_attempts keeps
-- every other attempt (retried, abandoned, superseded, and finishes off the common path); the
-- API's timeline reads both. Nullable: rows the Python services finish leave them empty.
ALTER TABLE tasks
  ADD COLUMN attempt_worker VARCHAR(64) NULL,
  ADD COLUMN attempt_started_at DATETIME(6) NULL;
