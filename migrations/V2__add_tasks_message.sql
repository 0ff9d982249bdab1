-- The outcome of a finished task: the payload's message when DONE, the reason when FAILED.
-- Nullable, so the Python worker (which never writes it) keeps working against this schema.
ALTER TABLE tasks ADD COLUMN message TEXT NULL;
