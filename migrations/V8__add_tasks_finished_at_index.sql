-- Serves the dashboard's "finished per minute" statistics from an index range.
CREATE INDEX idx_tasks_finished_at ON tasks (finished_at, status);
