-- Operations history for the monthly review (`albra report --month`, issue 17). The runners table keeps only the
-- latest heartbeat, so "was the runner up on the 14th?" and "how slow were order placements last month?" could not
-- be answered after the fact. Three small tables keep exactly that, in the runner's own clock (exchange time; the
-- replay's clock for a paper replay):
-- * runner_uptime: one row per continuous run of heartbeats (a start, or a heartbeat after a gap longer than the
--   staleness limit, opens a row; each heartbeat moves last_ms). clean = 1 when the runner stopped on purpose.
-- * exchange_calls: exchange calls per account, hour, operation and outcome ('ok' or the error class), counted.
-- * order_latency: one row per order placement (the few calls an operator cares to see percentiles of).
CREATE TABLE runner_uptime (
    name      TEXT NOT NULL,                  -- 'run:<account>' like runners.name
    start_ms  INTEGER NOT NULL,
    last_ms   INTEGER NOT NULL,
    clean     INTEGER NOT NULL DEFAULT 0 CHECK (clean IN (0, 1)),
    PRIMARY KEY (name, start_ms)
);
CREATE TABLE exchange_calls (
    account   TEXT NOT NULL,
    hour_ms   INTEGER NOT NULL,               -- start of the UTC hour
    op        TEXT NOT NULL,
    outcome   TEXT NOT NULL,                  -- 'ok' or the albra.exchange.errors class name
    n         INTEGER NOT NULL,
    PRIMARY KEY (account, hour_ms, op, outcome)
);
CREATE TABLE order_latency (
    account   TEXT NOT NULL,
    ts        INTEGER NOT NULL,
    op        TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    ms        REAL NOT NULL
);
CREATE INDEX order_latency_time ON order_latency(account, ts);
