"use strict";
// Renders /api/state into the page; every value goes in through textContent, never as HTML.
(function () {
  const refresh = Number(document.body.dataset.refreshMs) || 2000;
  const token = new URLSearchParams(window.location.search).get("token");
  const api = "api/state" + (token ? "?token=" + encodeURIComponent(token) : "");
  const money = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const qty = new Intl.NumberFormat(undefined, { maximumFractionDigits: 4 });

  function fmtMoney(v) { return v === null || v === undefined ? "–" : money.format(v); }
  function setText(id, text, cls) {
    const el = document.getElementById(id);
    el.textContent = text;
    if (cls !== undefined) { el.className = "value " + cls; }
  }
  function signClass(v) { return v > 0 ? "pos" : v < 0 ? "neg" : ""; }

  function table(id, columns, rows, empty) {
    const t = document.getElementById(id);
    t.replaceChildren();
    const head = t.createTHead().insertRow();
    for (const c of columns) {
      const th = document.createElement("th");
      th.textContent = c.title;
      if (c.num) { th.className = "num"; }
      head.appendChild(th);
    }
    const body = t.createTBody();
    if (!rows.length) {
      const cell = body.insertRow().insertCell();
      cell.colSpan = columns.length;
      cell.className = "empty";
      cell.textContent = empty;
      return;
    }
    for (const r of rows) {
      const tr = body.insertRow();
      for (const c of columns) {
        const td = tr.insertCell();
        const v = c.value(r);
        td.textContent = v === null || v === undefined ? "" : String(v);
        if (c.num) { td.className = "num"; }
        if (c.cls) { td.className += " " + c.cls(r); }
        td.title = td.textContent;
      }
    }
  }

  function curve(points) {
    const svg = document.getElementById("curve");
    svg.replaceChildren();
    const ns = "http://www.w3.org/2000/svg";
    if (points.length < 2) {
      const t = document.createElementNS(ns, "text");
      t.setAttribute("x", "10"); t.setAttribute("y", "110");
      t.textContent = "waiting for equity points…";
      svg.appendChild(t);
      return;
    }
    const values = points.map(p => p.v);
    let lo = Math.min(...values), hi = Math.max(...values);
    if (hi === lo) { hi += 1; lo -= 1; }
    const w = 1000, h = 220, pad = 12;
    const x = i => (i / (points.length - 1)) * w;
    const y = v => pad + (1 - (v - lo) / (hi - lo)) * (h - 2 * pad);
    let d = "";
    points.forEach((p, i) => { d += (i ? "L" : "M") + x(i).toFixed(1) + "," + y(p.v).toFixed(1); });
    const area = document.createElementNS(ns, "path");
    area.setAttribute("d", d + "L" + w + "," + h + "L0," + h + "Z");
    area.setAttribute("class", "area");
    const line = document.createElementNS(ns, "path");
    line.setAttribute("d", d);
    line.setAttribute("class", "line");
    svg.append(area, line);
    for (const [v, yy] of [[hi, 14], [lo, h - 4]]) {
      const t = document.createElementNS(ns, "text");
      t.setAttribute("x", "6"); t.setAttribute("y", String(yy));
      t.textContent = money.format(v);
      svg.appendChild(t);
    }
  }

  function render(s) {
    document.getElementById("strategy").textContent = s.strategy || "ibkrfw";
    document.getElementById("run-status").textContent = s.status;
    document.getElementById("time").textContent = s.time || "";
    document.getElementById("updated").textContent = new Date().toLocaleTimeString();
    const status = (s.health && s.health.status) || "failing";
    const badge = document.getElementById("health-badge");
    badge.textContent = status;
    badge.className = "badge " + status;
    setText("equity", fmtMoney(s.equity), "");
    setText("pnl", fmtMoney(s.pnl_today), signClass(s.pnl_today));
    setText("drawdown", s.drawdown === undefined ? "–" : (100 * s.drawdown).toFixed(2) + " %",
            s.drawdown > 0 ? "neg" : "");
    setText("cash", fmtMoney(s.cash), "");
    curve(s.equity_curve || []);
    table("positions", [
      { title: "Instrument", value: r => r.instrument },
      { title: "Quantity", num: true, value: r => qty.format(r.quantity) },
      { title: "Avg price", num: true, value: r => fmtMoney(r.avg_price) },
      { title: "Price", num: true, value: r => fmtMoney(r.price) },
      { title: "Value", num: true, value: r => fmtMoney(r.value) },
      { title: "Unrealized", num: true, value: r => fmtMoney(r.unrealized), cls: r => signClass(r.unrealized) },
    ], s.positions || [], "flat");
    table("orders", [
      { title: "Id", num: true, value: r => r.id },
      { title: "Instrument", value: r => r.instrument },
      { title: "Side", value: r => r.side },
      { title: "Qty", num: true, value: r => qty.format(r.quantity) },
      { title: "Filled", num: true, value: r => qty.format(r.filled) },
      { title: "Type", value: r => r.type },
      { title: "Limit", num: true, value: r => r.limit === null ? "" : fmtMoney(r.limit) },
      { title: "Stop", num: true, value: r => r.stop === null ? "" : fmtMoney(r.stop) },
      { title: "Tag", value: r => r.tag },
    ], s.orders || [], "no working orders");
    table("fills", [
      { title: "Time", value: r => r.time.replace("T", " ").replace("+00:00", "Z") },
      { title: "Instrument", value: r => r.instrument },
      { title: "Side", value: r => r.side },
      { title: "Qty", num: true, value: r => qty.format(r.quantity) },
      { title: "Price", num: true, value: r => fmtMoney(r.price) },
      { title: "Comm.", num: true, value: r => fmtMoney(r.commission) },
    ], s.fills || [], "no fills yet");
    table("checks", [
      { title: "Check", value: r => r.name },
      { title: "Status", value: r => r.status, cls: r => "st-" + r.status },
      { title: "Detail", value: r => r.detail },
    ], (s.health && s.health.checks) || [], "no checks");
    const load = s.load;
    const ms = v => (1000 * v).toFixed(1) + " ms";
    table("load", [
      { title: "Measure", value: r => r[0] },
      { title: "Value", num: true, value: r => r[1], cls: r => r[2] ? "neg" : "" },
    ], load ? [
      ["Lag p50 / p99", ms(load.lag_p50_s) + " / " + ms(load.lag_p99_s), load.behind],
      ["Lag max (last " + load.window_s + " s)", ms(load.lag_max_s), load.behind],
      ["Oldest waiting", ms(load.waiting_s), load.behind],
      ["Inbox depth (most / bound)", load.depth + " (" + load.high_water + " / " + load.bound + ")",
       load.depth > load.bound],
      ["Quotes conflated (inbox / ticks before decoding)",
       qty.format(load.conflated) + " / " + qty.format(load.ticks_conflated || 0), false],
      ["Events handled", qty.format(load.handled), false],
    ] : [], "not measured (backtest, or no heartbeat yet)");
    table("limits", [
      { title: "Limit", value: r => r.rule + ": " + r.measure },
      { title: "Used", num: true, value: r => qty.format(r.used) },
      { title: "Of", num: true, value: r => qty.format(r.limit) },
      { title: "Share", num: true, value: r => r.share === null ? "" : (100 * r.share).toFixed(0) + " %",
        cls: r => r.share >= 1 ? "neg" : "" },
    ], s.limits || [], "no account-wide limits set");
    table("halts", [
      { title: "Time", value: r => r.time.replace("T", " ").replace("+00:00", "Z") },
      { title: "Rule", value: r => r.rule },
      { title: "Reason", value: r => r.reason },
      { title: "Until", value: r => r.until || "end of run" },
    ], s.halts || [], "no halts: trading allowed");
    table("alerts", [
      { title: "Time", value: r => r.time.replace("T", " ").replace("+00:00", "Z") },
      { title: "Severity", value: r => r.severity },
      { title: "Alert", value: r => r.title },
      { title: "Channel", value: r => r.channel + (r.ok ? "" : " (failed)") },
    ], s.alerts || [], "no alerts");
  }

  async function tick() {
    try {
      const response = await fetch(api, { cache: "no-store" });
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      render(await response.json());
    } catch (err) {
      const badge = document.getElementById("health-badge");
      badge.textContent = "unreachable";
      badge.className = "badge failing";
    } finally {
      window.setTimeout(tick, refresh);
    }
  }
  tick();
})();
