-- A task's message is what its payload's `message` says, and the body limit admits far more than
-- TEXT's 64 KiB: MEDIUMTEXT holds what any accepted request can carry. Nullable as before.
ALTER TABLE tasks MODIFY COLUMN message MEDIUMTEXT NULL;
