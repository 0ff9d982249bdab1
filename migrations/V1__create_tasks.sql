-- The tasks table exactly as the original design specifies it, so the Python services and
-- TaskFlow can share one database. Later migrations only add to it.
CREATE TABLE tasks (
  id           CHAR(36) PRIMARY KEY,
  title        VARCHAR(255) NOT NULL,
  payload      JSON NULL,
  status       ENUM('PENDING','PROCESSING','DONE','FAILED') NOT NULL,
  created_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at   DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
                ON UPDATE CURRENT_TIMESTAMP(6),
  finished_at  DATETIME(6) NULL
);

CREATE INDEX idx_tasks_status ON tasks (status);
