-- One clock (issue 14): journal rows carry the exchange's time in `ts` (what timelines, equity curves and loss
-- assessments use) and the wall time of the writing process in `wall_ms`; processes that do not read the exchange
-- themselves (the bot, store-only commands) take the exchange time from the latest offset a process that did
-- measured, kept per account in clock_offsets. NULL wall_ms: a row written before this migration.
ALTER TABLE journal ADD COLUMN wall_ms INTEGER;

CREATE TABLE clock_offsets (
    account      TEXT PRIMARY KEY,          -- '' = the latest measurement of any account
    offset_ms    INTEGER NOT NULL,          -- exchange time − wall time
    measured_ms  INTEGER NOT NULL           -- wall time of the measurement
);
