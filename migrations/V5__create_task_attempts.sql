-- One row per processing attempt of a task: the timeline the API shows and the dashboard draws.
CREATE TABLE task_attempts (
  task_id      CHAR(36) NOT NULL,
  attempt      INT NOT NULL,
  worker       VARCHAR(64) NOT NULL,
  started_at   DATETIME(6) NOT NULL,
  finished_at  DATETIME(6) NULL,
  outcome      ENUM('DONE','FAILED','RETRY') NULL,
  error        TEXT NULL,
  PRIMARY KEY (task_id, attempt)
);
