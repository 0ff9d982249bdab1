-- Serves GET /tasks?title_prefix= (the dashboard's search) from an index range.
CREATE INDEX idx_tasks_title ON tasks (title);
