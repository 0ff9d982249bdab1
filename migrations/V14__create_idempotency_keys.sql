-- Idempotency-Key of POST /tasks: a key seen within a day answers with the task it created.
-- In MySQL, so every API process agrees; rows older than a day are pruned by the outbox relay.
CREATE TABLE idempotency_keys (
  idem_key      VARBINARY(255) PRIMARY KEY,
  request_hash  BINARY(32)     NOT NULL,
  task_id       CHAR(36)       NOT NULL,
  response      TEXT           NOT NULL,
  created_at    DATETIME(6)    NOT NULL,
  KEY idx_idempotency_keys_created_at (created_at)
);
