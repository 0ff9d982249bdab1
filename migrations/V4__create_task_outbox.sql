-- The transactional outbox: a task.created message waiting to be confirmed by the broker. It is
-- written in the same transaction as the task, so an accepted task is never lost between the
-- commit and the publish. The API deletes the row once the broker confirmed the publish; the
-- relay publishes rows whose next_attempt_at has passed (what the fast path missed).
CREATE TABLE task_outbox (
  task_id          CHAR(36) PRIMARY KEY,
  body             TEXT NOT NULL,
  created_at       DATETIME(6) NOT NULL,
  attempts         INT NOT NULL DEFAULT 0,
  next_attempt_at  DATETIME(6) NOT NULL,
  INDEX idx_task_outbox_next_attempt_at (next_attempt_at)
);
