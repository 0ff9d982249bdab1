-- Finds tasks left PENDING or PROCESSING past their lease without scanning the table.
CREATE INDEX idx_tasks_status_updated_at ON tasks (status, updated_at);
