// albra dashboard: polls the read-only JSON API and draws it. No framework, no build step, no CDN.
// Every figure is shown exactly as the API wrote it (the server formats numbers); data is only ever
// inserted with textContent, never as HTML, so a journal message cannot inject markup.
"use strict";
(function () {
  // ?refresh=N (seconds, 1..300) changes how often the page polls; 5 s unless asked.
  const asked = parseInt(new URLSearchParams(window.location.search).get("refresh") || "", 10);
  const SUMMARY_EVERY_MS = (asked >= 1 && asked <= 300 ? asked : 5) * 1000;
  const CURVE_EVERY_MS = 30000;
  const CURVE_HOURS = 168;
  const EXCHANGE_EVERY_MS = 15000;
  // ?exchange=1 asks for live balances/positions (only if the server was started with --exchange).
  const WANT_EXCHANGE = new URLSearchParams(window.location.search).get("exchange") === "1";
  const exch = {};       // account -> {data} or {error}
  let lastExchangeFetch = 0;
  const SVGNS = "http://www.w3.org/2000/svg";
  const cards = {};      // account -> {card, body, chart}
  const curves = {};     // account -> last /api/equity answer
  let lastCurveFetch = 0;
  let lastOk = null;

  function el(tag, opts, children) {
    const e = document.createElement(tag);
    opts = opts || {};
    if (opts.cls) e.className = opts.cls;
    if (opts.text !== undefined && opts.text !== null) e.textContent = String(opts.text);
    if (opts.data) for (const k of Object.keys(opts.data)) e.dataset[k] = opts.data[k];
    if (opts.title) e.title = opts.title;
    for (const c of children || []) if (c) e.appendChild(c);
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k of Object.keys(attrs || {})) e.setAttribute(k, attrs[k]);
    return e;
  }
  function signCls(s) {
    // only signed figures ("+12.30", "-4.05%") get a colour; "-" alone (missing) and "+0.00" stay plain
    if (typeof s !== "string" || /^\+0\.00%?$/.test(s)) return "";
    return /^\+\d/.test(s) ? "pos" : /^-\d/.test(s) ? "neg" : "";
  }
  function num(text, testid, extraCls) {
    const opts = { cls: ["num", signCls(text), extraCls || ""].join(" ").trim(), text: text };
    if (testid) opts.data = { testid: testid };
    return el("td", opts);
  }
  function kst(ts) {
    const d = new Date(ts + 9 * 3600 * 1000).toISOString();
    return d.slice(0, 10) + " " + d.slice(11, 19) + " KST";
  }
  function money(v) {
    return v.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }
  function table(headers, rows) {
    const thead = el("thead", {}, [el("tr", {}, headers.map((h) => el("th", { text: h })))]);
    return el("table", {}, [thead, el("tbody", {}, rows)]);
  }
  function empty(text) { return el("p", { cls: "muted", text: text }); }

  async function getJSON(url) {
    const r = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    let body;
    try { body = await r.json(); } catch (e) { throw new Error(url + ": HTTP " + r.status + ", not JSON"); }
    if (!r.ok) {
      const err = new Error((body && body.error) || ("HTTP " + r.status));
      err.status = r.status;
      throw err;
    }
    return body;
  }

  function setConn(ok, message) {
    const conn = document.getElementById("conn");
    const banner = document.getElementById("banner");
    if (ok) {
      lastOk = new Date();
      conn.className = "badge ok";
      conn.textContent = "live";
      banner.hidden = true;
    } else {
      conn.className = "badge bad";
      conn.textContent = "stale";
      banner.hidden = false;
      banner.textContent = "Cannot refresh: " + message +
        (lastOk ? " — figures below are from " + lastOk.toLocaleTimeString() + " (browser time)." : "");
    }
  }

  // ---------------------------------------------------------------- accounts and equity curves
  function kv(k, v, testid, cls) {
    const val = el("span", { cls: ["v", signCls(v), cls || ""].join(" ").trim(), text: v });
    if (testid) val.dataset.testid = testid;
    return el("div", {}, [el("span", { cls: "k", text: k }), val]);
  }

  function renderAccounts(accounts) {
    const root = document.getElementById("accounts");
    if (!accounts.length) { root.replaceChildren(empty("no accounts configured")); return; }
    const seen = new Set();
    for (const a of accounts) {
      seen.add(a.account);
      let c = cards[a.account];
      if (!c) {
        const body = el("div");
        const chart = el("div", { cls: "chart-holder", data: { testid: "chart-" + a.account } });
        const live = el("div", { cls: "exchange-line", data: { testid: "exchange-" + a.account } });
        live.hidden = !WANT_EXCHANGE;
        const card = el("div", { cls: "card", data: { account: a.account } }, [body, live, chart]);
        c = cards[a.account] = { card: card, body: body, chart: chart, live: live };
        renderExchange(a.account);
        drawChart(c.chart, curves[a.account]);
      }
      const runner = el("span", { cls: a.runner.alive ? "badge ok" : "badge bad", text: "runner " + a.runner.text,
                                  data: { testid: "runner-" + a.account } });
      const lvlCls = a.mdd_level > 0 ? "badge warn" : "badge";
      const head = el("div", { cls: "card-head" }, [
        el("h3", { text: a.account }), el("span", { cls: "badge", text: a.mode }), runner,
        el("span", { cls: lvlCls, text: "MDD level " + a.mdd_level, data: { testid: "mdd-level-" + a.account } }),
        a.unprotected_legs > 0 ? el("span", { cls: "badge bad", text: a.unprotected_legs + " leg(s) without a stop" }) : null,
      ]);
      const eq = el("div", { cls: "equity-line" }, [
        el("span", { cls: "equity", text: a.equity, data: { testid: "equity-" + a.account } }),
        el("span", { cls: "muted", text: "USDT equity at " + a.equity_at }),
      ]);
      const grid = el("div", { cls: "kv" }, [
        kv("wallet", a.wallet, "wallet-" + a.account),
        kv("unrealised", a.unrealized, "unrealized-" + a.account),
        kv("available", a.available, "available-" + a.account),
        kv("open legs", String(a.open_legs), "leg-count-" + a.account),
        kv("drawdown", a.drawdown + " (halt " + a.mdd_halt + ")", "drawdown-" + a.account),
        kv("daily loss used", a.daily_loss_used + " of " + a.daily_loss_limit, "daily-loss-" + a.account),
        kv("today", a.daily_change, "daily-change-" + a.account),
        kv("entries", a.trading_blocked ? "BLOCKED — " + a.trading_blocked
                      : a.entries_blocked_by.length ? "blocked: " + a.entries_blocked_by.join(", ") : "allowed",
           "entries-" + a.account, a.trading_blocked || a.entries_blocked_by.length ? "neg" : "pos"),
      ]);
      c.body.replaceChildren(head, eq, grid);
    }
    for (const name of Object.keys(cards)) {
      if (!seen.has(name)) { delete cards[name]; }
    }
    root.replaceChildren(...accounts.map((a) => cards[a.account].card));
  }

  function drawChart(holder, curve) {
    const W = 600, H = 170, L = 70, R = 12, T = 10, B = 24;
    const s = svg("svg", { viewBox: "0 0 " + W + " " + H, class: "chart", preserveAspectRatio: "none",
                           role: "img" });
    const caption = el("div", { cls: "chart-caption" });
    if (!curve) {
      holder.replaceChildren(caption);
      caption.textContent = "loading equity curve…";
      return;
    }
    const pts = curve.points;
    s.setAttribute("data-points", String(pts.length));
    s.setAttribute("aria-label", "equity of " + curve.account + " over the last " + curve.hours + " hours");
    if (pts.length < 2) {
      const t = svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" });
      t.textContent = pts.length ? "one snapshot so far: " + curve.last : "no equity snapshots in the last " + curve.hours + " h";
      s.appendChild(t);
      holder.replaceChildren(s);
      return;
    }
    const t0 = pts[0][0], t1 = pts[pts.length - 1][0];
    let lo = Infinity, hi = -Infinity;
    for (const p of pts) { lo = Math.min(lo, p[1]); hi = Math.max(hi, p[1]); }
    const padY = (hi - lo) * 0.08 || Math.max(Math.abs(hi) * 0.001, 1);
    lo -= padY; hi += padY;
    const x = (t) => L + (t1 === t0 ? 0 : (t - t0) / (t1 - t0)) * (W - L - R);
    const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
    const defs = svg("defs");
    const gid = "albra-area-" + curve.account.replace(/[^a-z0-9_-]/gi, "");
    const grad = svg("linearGradient", { id: gid, x1: "0", y1: "0", x2: "0", y2: "1" });
    grad.appendChild(svg("stop", { offset: "0%", "stop-color": "#4aa3ff", "stop-opacity": "0.35" }));
    grad.appendChild(svg("stop", { offset: "100%", "stop-color": "#4aa3ff", "stop-opacity": "0.02" }));
    defs.appendChild(grad);
    s.appendChild(defs);
    for (let i = 0; i <= 3; i++) {
      const v = lo + (hi - lo) * i / 3;
      s.appendChild(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
      const label = svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" });
      label.textContent = money(v);
      s.appendChild(label);
    }
    let d = "";
    pts.forEach((p, i) => { d += (i ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1); });
    const area = d + "L" + x(t1).toFixed(1) + " " + (H - B) + "L" + x(t0).toFixed(1) + " " + (H - B) + "Z";
    s.appendChild(svg("path", { d: area, class: "area", fill: "url(#" + gid + ")" }));
    s.appendChild(svg("path", { d: d, class: "line" }));
    const last = pts[pts.length - 1];
    s.appendChild(svg("circle", { cx: x(last[0]), cy: y(last[1]), r: 3.5, class: "dot" }));
    const from = svg("text", { x: L, y: H - 6, "text-anchor": "start" });
    from.textContent = kst(t0).slice(5, 16);
    const to = svg("text", { x: W - R, y: H - 6, "text-anchor": "end" });
    to.textContent = kst(t1).slice(5, 16) + " KST";
    s.appendChild(from); s.appendChild(to);
    const hover = svg("line", { y1: T, y2: H - B, class: "hover-line", visibility: "hidden" });
    const tip = svg("text", { y: T + 12, class: "tip", visibility: "hidden" });
    s.appendChild(hover); s.appendChild(tip);
    s.addEventListener("mousemove", (ev) => {
      const box = s.getBoundingClientRect();
      const px = (ev.clientX - box.left) / box.width * W;
      let best = pts[0];
      for (const p of pts) if (Math.abs(x(p[0]) - px) < Math.abs(x(best[0]) - px)) best = p;
      hover.setAttribute("x1", x(best[0])); hover.setAttribute("x2", x(best[0]));
      hover.setAttribute("visibility", "visible");
      tip.textContent = kst(best[0]) + "  " + money(best[1]);
      const tx = x(best[0]) > W / 2 ? x(best[0]) - 6 : x(best[0]) + 6;
      tip.setAttribute("x", tx);
      tip.setAttribute("text-anchor", x(best[0]) > W / 2 ? "end" : "start");
      tip.setAttribute("visibility", "visible");
    });
    s.addEventListener("mouseleave", () => {
      hover.setAttribute("visibility", "hidden"); tip.setAttribute("visibility", "hidden");
    });
    caption.appendChild(el("span", { text: "last " + curve.hours + " h: " + curve.first + " → " + curve.last }));
    caption.appendChild(el("span", { cls: signCls(curve.change), text: curve.change,
                                     data: { testid: "curve-change-" + curve.account } }));
    caption.appendChild(el("span", { text: "low " + curve.min + " · high " + curve.max }));
    holder.replaceChildren(s, caption);
  }

  async function refreshCurves(accounts) {
    await Promise.all(accounts.map(async (a) => {
      const c = await getJSON("/api/equity?account=" + encodeURIComponent(a.account) + "&hours=" + CURVE_HOURS);
      curves[a.account] = c;
      if (cards[a.account]) drawChart(cards[a.account].chart, c);
    }));
  }

  function renderExchange(account) {
    const c = cards[account];
    if (!c || !WANT_EXCHANGE) return;
    const x = exch[account];
    if (!x) { c.live.replaceChildren(el("span", { cls: "muted", text: "exchange: reading…" })); return; }
    if (x.error) {
      c.live.replaceChildren(el("span", { cls: "muted", text: "exchange: " + x.error, data: { testid: "exchange-error" } }));
      return;
    }
    const d = x.data;
    const parts = [
      el("span", { cls: "k", text: "on the exchange" }),
      el("span", { text: "equity " }), el("b", { text: d.balance.equity, data: { testid: "exchange-equity" } }),
      el("span", { text: " · unrealised " }), el("span", { cls: signCls(d.balance.unrealized), text: d.balance.unrealized }),
      el("span", { text: " · " + d.positions.length + " position(s) · read " + d.read_at }),
    ];
    const pos = d.positions.map((p) => el("div", { cls: "small", data: { symbol: p.symbol, side: p.position_side } }, [
      el("span", { text: p.symbol + " " + p.position_side + " " + p.qty + " @ " + p.entry + " mark " + p.mark + " " }),
      el("span", { cls: signCls(p.unrealized), text: p.unrealized }),
    ]));
    c.live.replaceChildren(el("div", {}, parts), ...pos);
  }

  async function refreshExchange(data) {
    if (!WANT_EXCHANGE) return;
    if (!data.exchange_view) {
      for (const a of data.accounts) exch[a.account] = { error: "the view is off (start albra dashboard --exchange)" };
    } else {
      await Promise.all(data.accounts.map(async (a) => {
        try {
          exch[a.account] = { data: await getJSON("/api/exchange?account=" + encodeURIComponent(a.account)) };
        } catch (e) {
          exch[a.account] = { error: e.message };
        }
      }));
    }
    for (const a of data.accounts) renderExchange(a.account);
  }

  // ---------------------------------------------------------------- legs, runners, flags, incidents, journal
  function protectionCell(leg) {
    const cls = leg.stop_status === "protected" ? "badge ok" : leg.stop_status === "pending" ? "badge warn" : "badge bad";
    const lines = leg.protection.map((o) => el("div", {
      text: o.purpose + " " + o.order_type + " @ " + o.trigger + " · " + o.qty + " · " + o.state,
      title: o.client_id + " (updated " + o.updated + ")", data: { purpose: o.purpose, state: o.state },
    }));
    return el("td", { cls: "orders", data: { col: "protection" } },
              [el("span", { cls: cls, text: leg.stop_status, data: { testid: "stop-status" } }), ...lines]);
  }

  function renderLegs(accounts) {
    const root = document.getElementById("legs");
    const rows = [];
    for (const a of accounts) {
      let strategy = null;
      for (const leg of a.legs) {
        if (leg.strategy !== strategy) {
          strategy = leg.strategy;
          const n = a.legs.filter((l) => l.strategy === strategy).length;
          rows.push(el("tr", { cls: "group", data: { group: a.account + "/" + strategy } },
                       [el("td", { text: a.account + " · " + strategy + " (" + n + ")" })]));
          rows[rows.length - 1].firstChild.colSpan = WANT_EXCHANGE ? 13 : 12;
        }
        const cell = (col, text, cls) => el("td", { cls: cls || "", text: text, data: { col: col } });
        const n = (col, text) => { const td = num(text); td.dataset.col = col; return td; };
        rows.push(el("tr", { data: { legId: leg.leg_id, account: a.account } }, [
          cell("symbol", leg.symbol),
          cell("direction", leg.direction, leg.direction === "LONG" ? "pos" : "neg"),
          cell("state", leg.state),
          n("qty", leg.qty), n("entry", leg.entry), n("stop", leg.stop), n("take_profit", leg.take_profit),
          n("pnl_at_stop", leg.pnl_at_stop), n("pnl_at_take_profit", leg.pnl_at_take_profit),
          n("realized_pnl", leg.realized_pnl),
          WANT_EXCHANGE ? n("unrealized", (exch[a.account] && exch[a.account].data &&
                                           exch[a.account].data.leg_unrealized[leg.leg_id]) || "-") : null,
          protectionCell(leg),
          cell("opened", leg.opened, "muted small"),
        ]));
      }
    }
    if (!rows.length) { root.replaceChildren(empty("no open legs")); return; }
    const headers = ["symbol", "side", "state", "qty", "entry", "stop", "take profit", "PnL at stop",
                     "PnL at target", "realised"];
    if (WANT_EXCHANGE) headers.push("unrealised (mark)");
    root.replaceChildren(table(headers.concat(["protection", "opened"]), rows));
  }

  function renderRunners(list) {
    const root = document.getElementById("runners");
    if (!list.length) { root.replaceChildren(empty("no runner has ever started")); return; }
    root.replaceChildren(table(["name", "state", "heartbeat", "pid"], list.map((r) => el("tr", { data: { runner: r.name } }, [
      el("td", { text: r.name }),
      el("td", {}, [el("span", { cls: r.alive ? "badge ok" : "badge bad", text: r.text })]),
      el("td", { text: r.heartbeat + (r.heartbeat_age_s === null ? "" : " (" + r.heartbeat_age_s + " s ago)") }),
      el("td", { cls: "num", text: r.pid === null ? "-" : String(r.pid) }),
    ]))));
  }

  function renderFlags(data) {
    const ks = document.getElementById("kill-switch");
    ks.className = data.kill_switch ? "badge bad" : "badge ok";
    ks.textContent = data.kill_switch ? "KILL SWITCH ON" : "kill switch off";
    ks.title = (data.kill_switches || []).map((k) => k.text).join("\n");
    ks.dataset.testid = "kill-switch";
    const root = document.getElementById("flags");
    if (!data.flags.length) { root.replaceChildren(empty("no active flags: entries allowed everywhere")); return; }
    root.replaceChildren(table(["kind", "scope", "reason", "by", "since"], data.flags.map((f) => el("tr", {
      data: { testid: "flag", kind: f.kind, scope: f.scope } }, [
      el("td", { cls: f.kind === "kill_switch" ? "neg" : "", text: f.kind }), el("td", { text: f.scope }),
      el("td", { text: f.reason || "-" }), el("td", { text: f.actor || "-" }), el("td", { text: f.since }),
    ]))));
  }

  function renderIncidents(list) {
    const root = document.getElementById("incidents");
    if (!list.length) { root.replaceChildren(empty("no incidents")); return; }
    root.replaceChildren(table(["id", "status", "kind", "title", "opened"], list.map((i) => el("tr", {
      data: { incidentId: i.id } }, [
      el("td", { cls: "nowrap", text: i.id }),
      el("td", {}, [el("span", { cls: i.status === "open" ? "badge bad" : "badge", text: i.status })]),
      el("td", { text: i.kind }), el("td", { text: i.title }), el("td", { text: i.opened }),
    ]))));
  }

  function renderJournal(list) {
    const root = document.getElementById("journal");
    if (!list.length) { root.replaceChildren(empty("the journal is empty")); return; }
    root.replaceChildren(table(["time", "level", "kind", "scope", "message"], list.map((e) => el("tr", {
      data: { seq: String(e.seq) } }, [
      el("td", { cls: "small nowrap", text: e.time }), el("td", { cls: "lvl-" + e.level, text: e.level }),
      el("td", { text: e.kind }),
      el("td", { text: [e.account, e.strategy, e.symbol].filter(Boolean).join(" / ") || "-" }),
      el("td", { text: e.message + (e.incident_id ? " [" + e.incident_id + "]" : "") }),
    ]))));
  }

  // ---------------------------------------------------------------- polling
  async function tick() {
    try {
      const data = await getJSON("/api/summary");
      document.getElementById("as-of").textContent = "as of " + data.as_of;
      renderFlags(data);
      renderAccounts(data.accounts);
      if (WANT_EXCHANGE && Date.now() - lastExchangeFetch >= EXCHANGE_EVERY_MS) {
        lastExchangeFetch = Date.now();
        await refreshExchange(data);
      }
      renderLegs(data.accounts);
      renderRunners(data.runners);
      renderIncidents(data.incidents);
      renderJournal(data.journal);
      if (Date.now() - lastCurveFetch >= CURVE_EVERY_MS) {
        await refreshCurves(data.accounts);
        lastCurveFetch = Date.now();
      }
      setConn(true);
      document.body.dataset.loaded = "1";
    } catch (e) {
      setConn(false, e.status === 401 ? "the token is missing or wrong: open /login?token=… again" : e.message);
    } finally {
      setTimeout(tick, SUMMARY_EVERY_MS);
    }
  }
  tick();
})();
