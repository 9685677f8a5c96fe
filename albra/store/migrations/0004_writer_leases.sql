-- One writer per account (invariant 8): the process that may send orders for an account holds its lease.
-- A runner takes it at start and renews it with every heartbeat; a second runner for the account refuses to start
-- and names the holder; `reconcile --apply` takes it only when no live runner holds it; emergency-shutdown preempts
-- it (the holder sees the preemption at its next renewal and stops trading).
CREATE TABLE writer_leases (
    account     TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,              -- 'run:<account>', 'reconcile', 'emergency-shutdown', ...
    pid         INTEGER NOT NULL,
    host        TEXT NOT NULL,
    since_ms    INTEGER NOT NULL,
    renewed_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL,
    token       TEXT NOT NULL               -- changes with every acquisition: a holder renews only its own
);
