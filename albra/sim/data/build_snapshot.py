"""Rebuild ``exchange_info_usdm.json.gz`` from a raw ``GET /fapi/v1/exchangeInfo`` response and a ccxt
``fetch_leverage_tiers`` dump (see PROVENANCE.md). Not imported by albra; run by hand:

    python albra/sim/data/build_snapshot.py EXCHANGE_INFO.json LEVERAGE_TIERS.json OUT.json.gz [source notes...]

Keeps PERPETUAL contracts whose status is TRADING and whose quote asset is USDT or USDC, with their filters
unchanged, and attaches each symbol's raw Binance ``leverageBracket`` rows (ccxt keeps them under ``info``).
A symbol without tiers is left out and named in the output's ``excluded`` list.
"""

from __future__ import annotations

import gzip
import json
import sys

KEEP = ("symbol", "baseAsset", "quoteAsset", "marginAsset", "onboardDate", "pricePrecision", "quantityPrecision",
        "liquidationFee", "marketTakeBound", "triggerProtect", "filters")
BRACKET = ("bracket", "initialLeverage", "notionalFloor", "notionalCap", "maintMarginRatio", "cum")


def build(info: dict, tiers: dict, notes: dict) -> dict:
    out, excluded = [], []
    for s in info["symbols"]:
        if s.get("contractType") != "PERPETUAL" or s.get("status") != "TRADING":
            continue
        if s.get("quoteAsset") not in ("USDT", "USDC"):
            continue
        key = f"{s['baseAsset']}/{s['quoteAsset']}:{s['marginAsset']}"
        rows = tiers.get(key)
        if not rows:
            excluded.append(s["symbol"])
            continue
        row = {k: s[k] for k in KEEP if k in s}
        row["brackets"] = [[r["info"][k] for k in BRACKET] for r in rows]
        out.append(row)
    out.sort(key=lambda r: r["symbol"])
    return {"serverTime": info["serverTime"], "source": notes, "bracketFields": list(BRACKET),
            "excluded": excluded, "symbols": out}


def main(argv: list[str]) -> None:
    info_path, tiers_path, out_path, *notes = argv
    with open(info_path) as f:
        info = json.load(f)
    with open(tiers_path) as f:
        tiers = json.load(f)
    snap = build(info, tiers, dict(n.split("=", 1) for n in notes))
    data = json.dumps(snap, separators=(",", ":"), sort_keys=False).encode()
    with open(out_path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(data)
    print(f"{len(snap['symbols'])} symbols, {len(snap['excluded'])} excluded, {len(data)} bytes raw")


if __name__ == "__main__":
    main(sys.argv[1:])
