-- albra store, schema version 1. Money and quantities are TEXT holding Decimal strings; times are UTC epoch ms.
-- Every table any process needs (runners, the Telegram bot, CLI commands) is defined here, even where a later
-- piece of albra fills it, so that the schema is one reviewed design (docs/adr/0003-store-schema.md).

-- Control flags: kill switch and pauses. scope_account/scope_strategy '' = all.
CREATE TABLE control_flags (
    kind            TEXT NOT NULL CHECK (kind IN ('kill_switch', 'pause')),
    scope_account   TEXT NOT NULL DEFAULT '',
    scope_strategy  TEXT NOT NULL DEFAULT '',
    active          INTEGER NOT NULL CHECK (active IN (0, 1)),
    reason          TEXT NOT NULL DEFAULT '',
    actor           TEXT NOT NULL DEFAULT '',
    updated_ms      INTEGER NOT NULL,
    PRIMARY KEY (kind, scope_account, scope_strategy),
    CHECK (scope_strategy = '' OR scope_account != '')
);

-- Write-ahead order intents: committed before an order is sent; client_id is deterministic.
CREATE TABLE order_intents (
    client_id         TEXT PRIMARY KEY CHECK (length(client_id) BETWEEN 1 AND 36),
    account           TEXT NOT NULL,
    strategy          TEXT NOT NULL,
    symbol            TEXT NOT NULL,
    purpose           TEXT NOT NULL,          -- entry, add, exit, partial, stop, take_profit, close, flatten ...
    leg_id            TEXT REFERENCES legs(leg_id),
    side              TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    position_side     TEXT NOT NULL CHECK (position_side IN ('BOTH', 'LONG', 'SHORT')),
    order_type        TEXT NOT NULL,
    qty               TEXT,
    price             TEXT,
    trigger_price     TEXT,
    reduce_only       INTEGER NOT NULL DEFAULT 0,
    close_position    INTEGER NOT NULL DEFAULT 0,
    is_algo           INTEGER NOT NULL DEFAULT 0,
    candle_ts         INTEGER,
    state             TEXT NOT NULL CHECK (state IN
                        ('pending', 'sent', 'unknown', 'open', 'filled', 'canceled', 'rejected', 'expired', 'not_found')),
    exchange_order_id TEXT,
    filled_qty        TEXT NOT NULL DEFAULT '0',
    avg_price         TEXT,
    error             TEXT,
    created_ms        INTEGER NOT NULL,
    updated_ms        INTEGER NOT NULL
);
CREATE INDEX order_intents_unresolved ON order_intents(account, state) WHERE state IN ('pending', 'sent', 'unknown');
CREATE INDEX order_intents_leg ON order_intents(leg_id);

-- Orders as the exchange reports them (ours and ones opened by hand), keyed by the exchange's id.
CREATE TABLE orders (
    account           TEXT NOT NULL,
    exchange_order_id TEXT NOT NULL,
    client_id         TEXT,
    symbol            TEXT NOT NULL,
    side              TEXT NOT NULL,
    position_side     TEXT NOT NULL,
    order_type        TEXT NOT NULL,
    is_algo           INTEGER NOT NULL DEFAULT 0,
    status            TEXT NOT NULL,
    qty               TEXT,
    filled_qty        TEXT NOT NULL DEFAULT '0',
    avg_price         TEXT,
    trigger_price     TEXT,
    reduce_only       INTEGER NOT NULL DEFAULT 0,
    updated_ms        INTEGER NOT NULL,
    PRIMARY KEY (account, is_algo, exchange_order_id)
);
CREATE INDEX orders_client ON orders(account, client_id);

-- Position legs: one strategy's share of an (account, symbol, position side) position.
CREATE TABLE legs (
    leg_id          TEXT PRIMARY KEY,
    account         TEXT NOT NULL,
    symbol          TEXT NOT NULL,
    strategy        TEXT NOT NULL,            -- 'UNATTRIBUTED' for positions adopted by reconciliation
    direction       TEXT NOT NULL CHECK (direction IN ('LONG', 'SHORT')),
    position_side   TEXT NOT NULL CHECK (position_side IN ('BOTH', 'LONG', 'SHORT')),
    state           TEXT NOT NULL CHECK (state IN ('pending', 'open', 'closing', 'closed', 'failed', 'cancelled')),
    qty             TEXT NOT NULL DEFAULT '0',
    qty_initial     TEXT NOT NULL DEFAULT '0',
    entry_price     TEXT,
    entry_ts        INTEGER,                  -- open time of the candle whose close produced the entry
    exit_price      TEXT,
    realized_pnl    TEXT NOT NULL DEFAULT '0',
    fees            TEXT NOT NULL DEFAULT '0',
    funding         TEXT NOT NULL DEFAULT '0',
    stop_price      TEXT,
    take_profit     TEXT,
    sl_client_id    TEXT,
    tp_client_id    TEXT,
    partial_exits   TEXT NOT NULL DEFAULT '[]',   -- JSON list of exit tags already done
    strategy_state  TEXT NOT NULL DEFAULT '{}',   -- JSON, owned by the strategy (trailing peak ...)
    entry_reason    TEXT NOT NULL DEFAULT '',
    close_reason    TEXT,
    opened_ms       INTEGER NOT NULL,
    closed_ms       INTEGER,
    updated_ms      INTEGER NOT NULL
);
CREATE INDEX legs_live ON legs(account, symbol, position_side) WHERE state IN ('pending', 'open', 'closing');
CREATE INDEX legs_strategy ON legs(account, strategy, state);

-- Executions (exchange trade rows), unique per exchange trade id.
CREATE TABLE fills (
    account           TEXT NOT NULL,
    symbol            TEXT NOT NULL,
    trade_id          TEXT NOT NULL,
    exchange_order_id TEXT NOT NULL,
    client_id         TEXT,
    leg_id            TEXT REFERENCES legs(leg_id),
    side              TEXT NOT NULL,
    position_side     TEXT NOT NULL,
    price             TEXT NOT NULL,
    qty               TEXT NOT NULL,
    fee               TEXT NOT NULL DEFAULT '0',
    fee_asset         TEXT NOT NULL DEFAULT 'USDT',
    realized_pnl      TEXT NOT NULL DEFAULT '0',
    ts                INTEGER NOT NULL,
    PRIMARY KEY (account, symbol, trade_id)
);
CREATE INDEX fills_leg ON fills(leg_id);
CREATE INDEX fills_time ON fills(account, ts);

-- Income rows read from the exchange (transfers drive the MDD peak adjustment, funding the leg costs).
CREATE TABLE income (
    account     TEXT NOT NULL,
    tran_id     TEXT NOT NULL,
    income_type TEXT NOT NULL,
    amount      TEXT NOT NULL,
    asset       TEXT NOT NULL DEFAULT 'USDT',
    symbol      TEXT NOT NULL DEFAULT '',
    ts          INTEGER NOT NULL,
    PRIMARY KEY (account, tran_id, income_type)
);
CREATE INDEX income_time ON income(account, ts);

CREATE TABLE equity_snapshots (
    account        TEXT NOT NULL,
    ts             INTEGER NOT NULL,
    wallet         TEXT NOT NULL,
    unrealized     TEXT NOT NULL,
    equity         TEXT NOT NULL,
    available      TEXT NOT NULL,
    PRIMARY KEY (account, ts)
);

-- Risk state that must survive restarts: MDD peak, daily loss anchors, cooldowns, Kelly inputs ...
-- strategy '' = account level. value is JSON.
CREATE TABLE risk_state (
    account     TEXT NOT NULL,
    strategy    TEXT NOT NULL DEFAULT '',
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_ms  INTEGER NOT NULL,
    PRIMARY KEY (account, strategy, key)
);

-- Last closed candle evaluated per (account, strategy, symbol, timeframe): each candle at most once.
CREATE TABLE candle_marks (
    account     TEXT NOT NULL,
    strategy    TEXT NOT NULL,
    symbol      TEXT NOT NULL,
    timeframe   TEXT NOT NULL,
    last_ts     INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    PRIMARY KEY (account, strategy, symbol, timeframe)
);

-- Runner processes (one per account) and the bot: heartbeats for status and safe-restart.
CREATE TABLE runners (
    name          TEXT PRIMARY KEY,           -- 'run:<account>' or 'bot' or 'dashboard'
    pid           INTEGER,
    host          TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL,              -- starting, running, stopping, stopped, crashed
    started_ms    INTEGER,
    heartbeat_ms  INTEGER,
    detail        TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE incidents (
    incident_id  TEXT PRIMARY KEY CHECK (incident_id GLOB 'INC-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9][0-9][0-9]*'),
    opened_ms    INTEGER NOT NULL,
    closed_ms    INTEGER,
    status       TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    severity     TEXT NOT NULL,
    kind         TEXT NOT NULL,               -- emergency_shutdown, mdd_halt, kill_switch, unattributed_leg, breaker_open ...
    title        TEXT NOT NULL,
    account      TEXT NOT NULL DEFAULT '',
    opened_by    TEXT NOT NULL DEFAULT '',
    details      TEXT NOT NULL DEFAULT '{}'
);

-- Append-only event journal. Triggers below forbid UPDATE and DELETE.
CREATE TABLE journal (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    ts           INTEGER NOT NULL,
    level        TEXT NOT NULL CHECK (level IN ('DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL')),
    kind         TEXT NOT NULL,
    account      TEXT NOT NULL DEFAULT '',
    strategy     TEXT NOT NULL DEFAULT '',
    symbol       TEXT NOT NULL DEFAULT '',
    message      TEXT NOT NULL,
    data         TEXT NOT NULL DEFAULT '{}',
    actor        TEXT NOT NULL DEFAULT '',
    incident_id  TEXT
);
CREATE INDEX journal_time ON journal(ts);
CREATE INDEX journal_kind ON journal(kind, ts);
CREATE INDEX journal_account ON journal(account, ts);
CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;

-- Alert outbox: one row per event id (dedup), delivery state so nothing is lost silently.
CREATE TABLE alerts (
    event_id     TEXT PRIMARY KEY,
    ts           INTEGER NOT NULL,
    level        TEXT NOT NULL CHECK (level IN ('CRITICAL', 'HIGH', 'MEDIUM', 'LOW')),
    kind         TEXT NOT NULL,
    account      TEXT NOT NULL DEFAULT '',
    text         TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'failed', 'logged', 'digested')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    sent_ms      INTEGER
);
CREATE INDEX alerts_pending ON alerts(status, ts) WHERE status = 'queued';

-- One-time confirmation codes (Telegram /emergency two-step).
CREATE TABLE confirmations (
    code         TEXT PRIMARY KEY,
    action       TEXT NOT NULL,
    chat_id      INTEGER NOT NULL,
    user_id      INTEGER NOT NULL,
    created_ms   INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL,
    used_ms      INTEGER
);
