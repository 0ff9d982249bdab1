-- How many processing attempts a task has had, across retries and operator replays. Defaults to
-- 0, so rows written by the Python services stay valid.
ALTER TABLE tasks ADD COLUMN attempts INT NOT NULL DEFAULT 0;
