-- Fees in their own asset (issue 13): a fill's fee stays in `fee`/`fee_asset` as the exchange charged it (BNB with
-- BNB burn on); `fee_quote` is its value in USDT at the fill's minute (albra/exchange/fees.py), the number leg
-- fees, daily loss and Kelly use. NULL on rows written before this migration: their fee was booked as USDT.
ALTER TABLE fills ADD COLUMN fee_quote TEXT;
