-- Keyset paging for GET /tasks, newest first, with and without a status filter:
-- (created_at, id) is the cursor, so both orderings are served straight from an index.
CREATE INDEX idx_tasks_created_at_id ON tasks (created_at, id);
CREATE INDEX idx_tasks_status_created_at_id ON tasks (status, created_at, id);
