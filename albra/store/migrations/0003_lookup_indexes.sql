-- Lookup indexes (no data change). Why: two reads ran as scans and grew with history, which a backtest of a few
-- thousand trades (and a long-lived live store) feels:
-- * attributing a fill by the exchange's order id (albra.ledger.fills) scanned every order intent;
-- * risk's Kelly window (albra.ledger.kelly: the newest closed legs of a strategy) sorted every closed leg of the
--   strategy before each entry. The partial index serves only queries that say state = 'closed'.
CREATE INDEX order_intents_exchange_id ON order_intents(exchange_order_id);  -- leads with the id: no other query plan changes
CREATE INDEX legs_closed_time ON legs(account, strategy, closed_ms, leg_id) WHERE state = 'closed';
