-- albra store, schema version 2: delivery bookkeeping for the alert outbox (albra.notify).
-- Several processes may drain the outbox (each runner and the bot). A sender claims a row with a lease
-- (claimed_by, claim_until_ms) so two processes never send the same row at once, and a crashed sender's
-- claim simply expires. next_attempt_ms holds retry backoff; delivered_to the chats that already have the
-- message (a retry never resends to them); summary is the one-line form used in a MEDIUM digest;
-- digest_id names the digest a MEDIUM row was folded into.
ALTER TABLE alerts ADD COLUMN claimed_by TEXT;
ALTER TABLE alerts ADD COLUMN claim_until_ms INTEGER;
ALTER TABLE alerts ADD COLUMN next_attempt_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN delivered_to TEXT NOT NULL DEFAULT '[]';
ALTER TABLE alerts ADD COLUMN summary TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN digest_id TEXT;
CREATE INDEX alerts_due ON alerts(status, next_attempt_ms) WHERE status = 'queued';
