-- The outbox moves onto the task row: a task whose task.created message is not yet confirmed by
-- the broker has dispatch_due_at set (when the relay should publish it), so creating a task is
-- one INSERT and one commit. NULL once dispatched, and for rows the Python API writes (it
-- publishes by itself).
ALTER TABLE tasks
  ADD COLUMN dispatch_due_at DATETIME(6) NULL,
  ADD INDEX idx_tasks_dispatch_due_at (dispatch_due_at);
