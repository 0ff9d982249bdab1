-- Replaced by tasks.dispatch_due_at (V9).
DROP TABLE task_outbox;
