"""The monthly review as Markdown and as one self-contained HTML page (inline CSS and SVG, no script, no network).

Only formatting lives here: every number comes from :func:`albra.review.month.build`, so the three outputs
(Markdown, HTML, ``--json``) cannot disagree. Text from the store (journal messages, incident titles, reasons) is
escaped in the HTML and in Markdown tables.
"""

from __future__ import annotations

from html import escape
from typing import Any, Sequence

from albra.dashboard.figures import money
from albra.review.charts import daily_bars, equity_chart
from albra.review.month import summary_lines


def _v(x: Any, suffix: str = "") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.2f}{suffix}"
    return f"{x}{suffix}"


def _m(x: Any) -> str:
    """Money for people: cents, thousands separators (``--json`` keeps every digit)."""
    return money(x, signed=True)


def _md_cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def _md_table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    if not rows:
        return ["_none_", ""]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return out + [""]


# ---------------------------------------------------------------------------------------------- sections as rows
def _perf_rows(rep: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for a in rep["accounts"]:
        p = a["performance"]
        for s in [{"strategy": "(account)", **p}] + p["strategies"]:
            rows.append([a["account"], s["strategy"], s["trades"], _m(s["net_pnl"]), money(s["fees"]), _m(s["funding"]),
                         _v(s["win_rate_pct"], "%"), _v(s["profit_factor"]),
                         money(s.get("max_drawdown") if s["strategy"] != "(account)" else p["equity"]["max_drawdown"]),
                         _v(s["exposure_pct"], "%")])
    return rows


PERF_HEAD = ["account", "strategy", "trades", "net PnL", "fees", "funding", "win rate", "profit factor",
             "max DD (USDT)", "exposure"]
EQ_HEAD = ["account", "start", "end", "change", "max DD", "max DD %", "longest under peak (h)", "Sharpe", "Sortino",
           "Calmar"]
UP_HEAD = ["runner", "uptime", "up (h)", "observed (h)", "starts", "restarts", "unclean stops"]
EX_HEAD = ["account", "calls", "errors", "error rate", "by class", "placements", "p50 ms", "p90 ms", "p99 ms", "max ms"]
INC_HEAD = ["id", "kind", "severity", "account", "opened", "closed", "duration (h)", "title"]


def _eq_rows(rep: dict[str, Any]) -> list[list[Any]]:
    out = []
    for a in rep["accounts"]:
        e = a["performance"]["equity"]
        out.append([a["account"], money(e["start"]), money(e["end"]), _m(e["change"]), money(e["max_drawdown"]),
                    _v(e["max_drawdown_pct"], "%"), _v(e["drawdown_longest_h"]), _v(e["sharpe"]), _v(e["sortino"]),
                    _v(e["calmar"])])
    return out


def _up_rows(rep: dict[str, Any]) -> list[list[Any]]:
    out = []
    for a in rep["accounts"]:
        u = a["operations"]["uptime"]
        out.append([u["runner"], _v(u["uptime_pct"], "%"), _v(u["up_h"]), _v(u["observed_h"]), u["starts"],
                    u["restarts"], u["unclean_stops"]])
    return out


def _ex_rows(rep: dict[str, Any]) -> list[list[Any]]:
    out = []
    for a in rep["accounts"]:
        x = a["operations"]["exchange"]
        cls = ", ".join(f"{k} {v['n']} ({v['rate_pct']:.2f}%)" for k, v in x["errors_by_class"].items()) or "-"
        lat = x["placement_latency_ms"]
        out.append([a["account"], x["calls"], x["errors"], _v(x["error_rate_pct"], "%"), cls, x["placements"],
                    _v(lat["p50"]), _v(lat["p90"]), _v(lat["p99"]), _v(lat["max"])])
    return out


def _inc_rows(rep: dict[str, Any]) -> list[list[Any]]:
    return [[i["id"], i["kind"], i["severity"], i["account"] or "all", i["opened"], i["closed"] or "open",
             _v(i["duration_h"]), i["title"]] for i in rep["incidents"]]


def _risk_tables(rep: dict[str, Any]) -> list[tuple[str, list[str], list[list[Any]]]]:
    r = rep["risk"]
    return [
        ("MDD level changes", ["at", "account", "from", "to", "drawdown %"],
         [[m["at"], m["account"], m["from"], m["to"], m["drawdown_pct"]] for m in r["mdd_level_changes"]]),
        ("Entries refused by risk, by rule", ["rule", "refusals"], [[k, n] for k, n in r["refusals_by_rule"].items()]),
        ("Kill switch and pause periods", ["flag", "scope", "from", "to", "hours", "reason", "by"],
         [[p["flag"], p["scope"], p["from"], p["to"], p["hours"], p["reason"], p["actor"]] for p in r["flag_periods"]]),
        ("Manual interventions", ["at", "kind", "account", "by", "what"],
         [[m["at"], m["kind"], m["account"] or "all", m["actor"], m["message"]] for m in r["manual_interventions"]]),
    ]


# ---------------------------------------------------------------------------------------------- Markdown
def markdown(rep: dict[str, Any]) -> str:
    out = [f"# albra monthly review — {rep['month']}", "",
           f"{rep['from']} → {rep['to']} · generated {rep['generated']}"
           + (f" · account {rep['account_filter']}" if rep["account_filter"] else ""), ""]
    out += ["## Summary", ""] + [f"- {l}" for l in summary_lines(rep)[1:]] + [""]
    out += ["## Performance", ""] + _md_table(PERF_HEAD, _perf_rows(rep))
    out += ["### Equity and risk-adjusted return", ""] + _md_table(EQ_HEAD, _eq_rows(rep))
    for a in rep["accounts"]:
        days = [d for d in a["performance"]["daily"] if d["net_pnl"] != "0"]
        out += [f"### Daily net PnL — {a['account']}", ""] + _md_table(["day (KST)", "net PnL"],
                                                                        [[d["day"], _m(d["net_pnl"])] for d in days])
    out += ["## Risk", ""]
    for title, head, rows in _risk_tables(rep):
        out += [f"### {title}", ""] + _md_table(head, rows)
    out += ["## Operations", "", "### Runner uptime (from heartbeats)", ""] + _md_table(UP_HEAD, _up_rows(rep))
    out += ["### Exchange calls and order placement latency", ""] + _md_table(EX_HEAD, _ex_rows(rep))
    out += ["### Incidents", ""] + _md_table(INC_HEAD, _inc_rows(rep))
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------- HTML
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px auto;max-width:1180px;color:#1c2430;
background:#fafbfc;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d5dae1}
h3{font-size:15px;margin:18px 0 6px}.meta{color:#5b6675}table{border-collapse:collapse;margin:4px 0 12px;width:100%}
th,td{border:1px solid #d5dae1;padding:4px 8px;text-align:left;vertical-align:top}th{background:#eef1f5}
td.num{text-align:right;font-variant-numeric:tabular-nums}.neg{color:#b3261e}.pos{color:#1b7f3b}
.chart{width:100%;height:auto;background:#fff;border:1px solid #d5dae1;margin:4px 0 10px}
.equity{stroke:#1f5fbf;stroke-width:1.6}.drawdown{fill:#e8a0a0;stroke:#b3261e;stroke-width:.6}
.zero{stroke:#8a94a3;stroke-width:.6}.up{fill:#2e9b50}.down{fill:#c8463d}.flat{fill:#aab}
.axis{font-size:11px;fill:#5b6675}.empty{color:#5b6675;font-style:italic}ul.summary li{margin:2px 0}
"""


def _cell(x: Any) -> str:
    s = str(x)
    num = s.replace(",", "").replace("%", "").lstrip("+-").replace(".", "", 1).isdigit()
    cls = ' class="num' + (" neg" if num and s.startswith("-") else "") + '"' if num else ""
    return f"<td{cls}>{escape(s)}</td>"


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], testid: str) -> str:
    if not rows:
        return f'<p class="empty" data-testid="{testid}">none</p>'
    h = "".join(f"<th>{escape(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(_cell(c) for c in r) + "</tr>" for r in rows)
    return f'<table data-testid="{testid}"><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>'


def html(rep: dict[str, Any]) -> str:
    t = rep["totals"]
    parts = [
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        # no network: nothing on this page may load anything (the CSP says so to the browser too)
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>albra review {escape(rep['month'])}</title><style>{CSS}</style></head><body>",
        f"<h1>albra monthly review — {escape(rep['month'])}</h1>",
        f"<p class=\"meta\">{escape(rep['from'])} → {escape(rep['to'])} · generated {escape(rep['generated'])}</p>",
        "<h2>Summary</h2><ul class=\"summary\" data-testid=\"summary\">",
        *[f"<li>{escape(l)}</li>" for l in summary_lines(rep)[1:]], "</ul>",
        f"<p>Total net PnL <b data-testid=\"total-net\">{escape(_m(t['net_pnl']))}</b> USDT · trades "
        f"<b data-testid=\"total-trades\">{t['trades']}</b> · fees <b data-testid=\"total-fees\">"
        f"{escape(money(t['fees']))}</b></p>",
        "<h2>Performance</h2>", _table(PERF_HEAD, _perf_rows(rep), "performance"),
        "<h3>Equity and risk-adjusted return</h3>", _table(EQ_HEAD, _eq_rows(rep), "equity"),
    ]
    for a in rep["accounts"]:
        p = a["performance"]
        parts += [f"<h3>{escape(a['account'])}: equity and drawdown</h3>",
                  equity_chart(a["account"], p["equity"]["curve"]),
                  f"<h3>{escape(a['account'])}: daily net PnL (KST days)</h3>", daily_bars(a["account"], p["daily"])]
    parts.append("<h2>Risk</h2>")
    for title, head, rows in _risk_tables(rep):
        parts += [f"<h3>{escape(title)}</h3>", _table(head, rows, "risk-" + title.split()[0].lower())]
    parts += ["<h2>Operations</h2><h3>Runner uptime (from heartbeats)</h3>", _table(UP_HEAD, _up_rows(rep), "uptime"),
              "<h3>Exchange calls and order placement latency</h3>", _table(EX_HEAD, _ex_rows(rep), "exchange"),
              "<h3>Incidents</h3>", _table(INC_HEAD, _inc_rows(rep), "incidents"), "</body></html>"]
    return "\n".join(parts)
