"use strict";
// Renders /api/state into the page. Every value goes in through textContent (never as HTML),
// the chart is SVG drawn in the element's own pixels, and the access token, if the page was
// opened with ?token=, stays in memory only: it is taken off the address bar at once and sent
// as an Authorization: Bearer header.
(function () {
  const body = document.body;
  const refresh = Number(body.dataset.refreshMs) || 2000;
  const SVG = "http://www.w3.org/2000/svg";

  const params = new URLSearchParams(window.location.search);
  const token = params.get("token");
  if (token !== null) {
    params.delete("token");
    const rest = params.toString();
    window.history.replaceState(null, "", window.location.pathname + (rest ? "?" + rest : "") +
                                window.location.hash);
  }
  const auth = token ? { Authorization: "Bearer " + token } : {};

  let last = null;          // the last state received
  let receivedAt = null;    // when (this browser's clock), for "updated 3 s ago"
  let failure = "";         // why the last poll failed, "" when it did not
  let builtAgo = null;      // how old the state was when served (both on the server's clock)
  let polls = 0;

  // --- formatting -------------------------------------------------------------------------
  const money = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const qty = new Intl.NumberFormat(undefined, { maximumFractionDigits: 4 });
  const price = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 6 });
  const none = v => v === null || v === undefined || (typeof v === "number" && !isFinite(v));
  const fmtMoney = v => none(v) ? "–" : money.format(v);
  const fmtSigned = v => none(v) ? "–" : (v > 0 ? "+" : "") + money.format(v);
  const fmtPrice = v => none(v) ? "" : price.format(v);
  const fmtQty = v => none(v) ? "" : qty.format(v);
  const pct = (v, digits) => none(v) ? "–" : (100 * v).toFixed(digits === undefined ? 2 : digits) + " %";
  const signClass = v => none(v) ? "" : v > 0 ? "pos" : v < 0 ? "neg" : "";
  const currency = () => (last && last.currency) || "";

  function fmtAge(s) {
    if (none(s)) { return ""; }
    if (s < 10) { return s.toFixed(1) + " s"; }
    if (s < 120) { return Math.round(s) + " s"; }
    if (s < 7200) { return Math.round(s / 60) + " min"; }
    if (s < 172800) { return (s / 3600).toFixed(1) + " h"; }
    return Math.round(s / 86400) + " d";
  }

  // times are shown in the run's zone (clock.zone), the one clock of the run
  const partsCache = new Map();
  function zoneFormat(zone) {
    if (!partsCache.has(zone)) {
      let f;
      try {
        f = new Intl.DateTimeFormat("en-US", {
          timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
          hour: "2-digit", minute: "2-digit", second: "2-digit" });
      } catch (err) {
        f = null;  // an unknown zone: UTC instead
      }
      partsCache.set(zone, f);
    }
    return partsCache.get(zone);
  }
  function parts(ms) {
    const zone = (last && last.clock && last.clock.zone) || "UTC";
    const f = zoneFormat(zone) || zoneFormat("UTC");
    const p = {};
    for (const x of f.formatToParts(new Date(ms))) { p[x.type] = x.value; }
    return p;
  }
  function parseTime(iso) {
    if (!iso) { return NaN; }
    return Date.parse(String(iso).replace(" ", "T"));
  }
  function fmtTime(iso, short) {
    const ms = parseTime(iso);
    if (!isFinite(ms)) { return iso ? String(iso) : ""; }
    const p = parts(ms);
    const clock = p.hour + ":" + p.minute + ":" + p.second;
    if (short && last && last.clock && last.clock.day === p.year + "-" + p.month + "-" + p.day) {
      return clock;  // today, in the run's zone
    }
    return p.year + "-" + p.month + "-" + p.day + " " + clock;
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    if (cls) { e.className = cls; }
    return e;
  }
  function byId(id) { return document.getElementById(id); }
  function setText(id, text, cls) {
    const e = byId(id);
    e.textContent = text;
    if (cls !== undefined) { e.className = cls; }
    return e;
  }

  function table(id, columns, rows, empty) {
    const t = byId(id);
    t.replaceChildren();
    const head = t.createTHead().insertRow();
    for (const c of columns) {
      const th = el("th", c.title, c.num ? "num" : "");
      head.appendChild(th);
    }
    const tb = t.createTBody();
    if (!rows.length) {
      const cell = tb.insertRow().insertCell();
      cell.colSpan = columns.length;
      cell.className = "empty";
      cell.textContent = empty;
      return;
    }
    for (const r of rows) {
      const tr = tb.insertRow();
      for (const c of columns) {
        const td = tr.insertCell();
        const v = c.value(r);
        td.textContent = none(v) ? "" : String(v);
        const cls = [c.num ? "num" : "", c.cls ? c.cls(r) : ""].filter(Boolean).join(" ");
        if (cls) { td.className = cls; }
      }
    }
  }

  // --- header -----------------------------------------------------------------------------
  const CONNECTION = {  // the states of ibkrfw.ibkr.ConnectionState
    connected: "IB connected",
    ib_unreachable: "IB connectivity lost",       // TWS is up but lost IB's servers (1100, 2110)
    disconnected: "disconnected from TWS",        // no socket to TWS or the Gateway
    connecting: "connecting to TWS",
  };

  function renderHeader(s) {
    setText("strategy", s.strategy || "ibkrfw");
    const mode = s.mode ? String(s.mode) : "";
    setText("mode", mode ? mode.toUpperCase() : "mode unknown", "mode " + (mode || "unknown"));
    setText("account", s.account || "unknown");

    const detail = s.connection_detail || { state: s.connection || "unknown" };
    const state = detail.state || s.connection || "unknown";
    const conn = byId("connection");
    conn.replaceChildren();
    let text = CONNECTION[state] || String(state).replace(/_/g, " ");
    if (!none(detail.code) && state !== "connected") { text += " (" + detail.code + ")"; }
    if (detail.since) { text += " since " + fmtTime(detail.since, true); }
    const down = (detail.farms || []).filter(f => !f.ok);
    let level = state === "connected" ? "ok" : "bad";
    conn.appendChild(el("span", text, "conn-state"));
    if (detail.reconnecting) { conn.appendChild(el("span", "reconnecting…", "conn-note")); }
    if (state === "connected" && down.length) {
      level = "warn";
      conn.appendChild(el("span", "farms down: " + down.map(
        f => f.name + (f.kind ? " (" + f.kind + ")" : "")).join(", "), "conn-note"));
    } else if (state === "connected" && (detail.farms || []).length) {
      conn.appendChild(el("span", "data farms ok", "conn-note"));
    }
    if (detail.reason && state !== "connected") { conn.appendChild(el("span", detail.reason, "conn-note")); }
    conn.className = "conn " + level;

    const trading = s.trading || fallbackTrading(s);
    const tstate = trading.state || "unknown";
    let ttext = {
      active: "trading active", paused: "PAUSED", halted: "HALTED", stopped: "STOPPED",
    }[tstate] || "trading " + tstate;
    if (tstate === "paused" || tstate === "halted") {
      ttext += " by " + (trading.by || (tstate === "paused" ? "operator" : "a rule"));
    }
    if (trading.reason) { ttext += ": " + trading.reason; }
    setText("trading", ttext, "pill " + tstate);

    const health = s.health || { status: "failing", reasons: ["no health in the state"] };
    const status = health.status || "failing";
    const badge = setText("health-badge", status, "badge " + status);
    const reasons = health.reasons || [];
    badge.title = reasons.join("\n");
    const box = byId("health-reasons");
    box.replaceChildren();
    if (status !== "ok" && reasons.length) {
      for (const r of reasons) { box.appendChild(el("div", r)); }
      box.className = "reasons " + status;
      box.hidden = false;
    } else {
      box.hidden = true;
    }

    const clock = s.clock || {};
    const zone = clock.zone || "UTC";
    byId("clock").firstElementChild.textContent = "engine time, " + zone;
    setText("clock-time", clock.local || fmtTime(clock.time || s.time));

    const banner = byId("stop-reason");
    if (s.stopped) {
      banner.textContent = "stopped: " + (s.stop_reason || "no reason given") +
        (s.time ? " (at " + fmtTime(s.time) + " engine time)" : "");
      banner.hidden = false;
    } else {
      banner.textContent = "";
      banner.hidden = true;
    }
  }

  function fallbackTrading(s) {
    if (s.stopped) { return { state: "stopped", reason: "", by: null }; }
    const now = parseTime(s.time);
    const active = (s.halts || []).filter(h => !h.until || parseTime(h.until) > now);
    if (active.length) {
      const h = active[active.length - 1];
      return { state: "halted", reason: h.reason, by: h.rule };
    }
    return { state: "active", reason: "", by: null };
  }

  function renderUpdated() {
    const e = byId("updated");
    const ago = receivedAt === null ? "" : "updated " + fmtAge((Date.now() - receivedAt) / 1000) + " ago";
    if (failure) {
      e.textContent = "unreachable: " + failure + (ago ? " (last " + ago + ")" : "");
      e.className = "updated bad";
    } else if (builtAgo !== null && builtAgo > Math.max(10, 3 * refresh / 1000) && !(last && last.stopped)) {
      // the dashboard answers, but the run has not published a state for a while
      e.textContent = (ago || "updated") + "; the state itself is " + fmtAge(builtAgo) +
        " old: the run is not publishing";
      e.className = "updated bad";
    } else {
      e.textContent = ago || "not updated yet";
      e.className = "updated";
    }
  }

  // --- cards ------------------------------------------------------------------------------
  function renderCards(s) {
    for (const e of document.querySelectorAll(".ccy")) {
      e.textContent = currency() ? "(" + currency() + ")" : "";
    }
    const pnl = s.pnl || {};
    setText("equity", fmtMoney(s.equity), "value");
    const today = none(pnl.today) ? s.pnl_today : pnl.today;
    setText("pnl", fmtSigned(today), "value " + signClass(today));
    const day = pnl.day || (s.clock && s.clock.day);
    setText("pnl-day", (day ? day : "") + (currency() ? " (" + currency() + ")" : ""));
    setText("realized", fmtSigned(pnl.realized), signClass(pnl.realized));
    setText("unrealized", fmtSigned(pnl.unrealized), signClass(pnl.unrealized));
    setText("commission", none(pnl.commission) ? "" : "commission " + fmtMoney(pnl.commission), "note");
    setText("drawdown", pct(s.drawdown), "value " + (s.drawdown > 0 ? "neg" : ""));
    const risk = s.risk || {};
    setText("drawdown-limit", none(risk.drawdown_limit) ? "no drawdown limit" :
            "limit " + pct(risk.drawdown_limit, 1), "note");
    setText("cash", fmtMoney(s.cash), "value");
  }

  // --- the equity chart: axes and labels in pixels, redrawn at every size -----------------
  const TIME_STEPS_S = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 10800, 21600, 43200, 86400,
                        172800, 604800, 1209600, 2592000, 7776000, 15552000, 31536000];

  function niceStep(range, count) {
    const raw = range / Math.max(1, count);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 2.5, 5, 10]) {
      if (m * mag >= raw) { return m * mag; }
    }
    return 10 * mag;
  }

  function svgEl(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) { e.setAttribute(k, String(attrs[k])); }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function timeLabel(ms, stepS, spanS) {
    const p = parts(ms);
    if (stepS >= 31536000) { return p.year; }
    if (stepS >= 86400) {
      return spanS > 300 * 86400 ? p.year + "-" + p.month : p.month + "-" + p.day;
    }
    const hm = p.hour + ":" + p.minute + (stepS < 60 ? ":" + p.second : "");
    return spanS > 86400 ? p.month + "-" + p.day + " " + hm : hm;
  }

  function chart(s) {
    const svg = byId("curve");
    svg.replaceChildren();
    const width = Math.max(200, Math.floor(svg.parentElement.clientWidth));
    const height = width < 500 ? 200 : 260;
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    const raw = (s.equity_curve || []).map(p => ({ t: parseTime(p.t), v: p.v }))
      .filter(p => isFinite(p.t) && !none(p.v));
    if (raw.length < 2) {
      svg.appendChild(svgEl("text", { x: 10, y: height / 2, class: "axis" }, "waiting for equity points…"));
      return;
    }
    let lo = Infinity, hi = -Infinity;
    for (const p of raw) { lo = Math.min(lo, p.v); hi = Math.max(hi, p.v); }
    if (hi === lo) { hi += 1; lo -= 1; }
    const ticksY = Math.max(2, Math.floor((height - 40) / 45));
    const stepY = niceStep(hi - lo, ticksY);
    lo = Math.floor(lo / stepY) * stepY;
    hi = Math.ceil(hi / stepY) * stepY;
    const digits = stepY >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(stepY)));
    const values = [];
    for (let v = lo; v <= hi + stepY / 2; v += stepY) { values.push(v); }
    const standard = new Intl.NumberFormat(undefined, {
      minimumFractionDigits: digits, maximumFractionDigits: digits });
    let labelsY = values.map(v => [v, standard.format(v)]);
    if (width < 500 && hi >= 1e5) {
      // short labels on a phone (1.02M), unless they would no longer tell the ticks apart
      const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumSignificantDigits: 4 });
      const short = values.map(v => [v, compact.format(v)]);
      if (new Set(short.map(l => l[1])).size === short.length) { labelsY = short; }
    }
    const longest = Math.max(...labelsY.map(l => l[1].length));
    const left = Math.min(110, 12 + 7 * longest), right = 12, top = 10, bottom = 24;
    const plotW = width - left - right, plotH = height - top - bottom;
    const t0 = raw[0].t, t1 = raw[raw.length - 1].t;
    const span = Math.max(1, t1 - t0);
    const x = t => left + ((t - t0) / span) * plotW;
    const y = v => top + (1 - (v - lo) / (hi - lo)) * plotH;

    const grid = svgEl("g", { class: "grid" });
    for (const [v, text] of labelsY) {
      const yy = y(v).toFixed(1);
      grid.appendChild(svgEl("line", { x1: left, x2: width - right, y1: yy, y2: yy }));
      grid.appendChild(svgEl("text", { x: left - 6, y: Number(yy) + 4, class: "axis", "text-anchor": "end" }, text));
    }
    const spanS = span / 1000;
    const want = Math.max(2, Math.floor(plotW / 95));
    const ticks = st => Math.floor(t1 / (st * 1000)) - Math.ceil(t0 / (st * 1000)) + 1;
    const year = TIME_STEPS_S[TIME_STEPS_S.length - 1];
    const steps = TIME_STEPS_S.concat([2, 5, 10, 20, 50, 100].map(n => n * year));
    let k = steps.findIndex(st => ticks(st) <= want);
    if (k < 0) { k = steps.length - 1; }
    if (ticks(steps[k]) < 2 && k > 0 && ticks(steps[k - 1]) <= want + 1) {
      k -= 1;  // one tick says little: a finer step, if its labels still fit
    }
    const stepS = steps[k];
    const stepMs = stepS * 1000;
    for (let t = Math.ceil(t0 / stepMs) * stepMs; t <= t1; t += stepMs) {
      const xx = x(t);
      grid.appendChild(svgEl("line", { x1: xx.toFixed(1), x2: xx.toFixed(1), y1: top, y2: top + plotH, class: "v" }));
      const anchor = xx - left < 30 ? "start" : width - right - xx < 30 ? "end" : "middle";
      grid.appendChild(svgEl("text", { x: xx.toFixed(1), y: height - 6, class: "axis", "text-anchor": anchor },
                             timeLabel(t, stepS, spanS)));
    }
    svg.appendChild(grid);

    // the drawdown band: the area between the running peak and the equity
    let peak = -Infinity, upper = "", lower = "";
    raw.forEach((p, i) => {
      peak = Math.max(peak, p.v);
      upper += (i ? "L" : "M") + x(p.t).toFixed(1) + "," + y(peak).toFixed(1);
    });
    for (let i = raw.length - 1; i >= 0; i--) {
      lower += "L" + x(raw[i].t).toFixed(1) + "," + y(raw[i].v).toFixed(1);
    }
    svg.appendChild(svgEl("path", { d: upper + lower + "Z", class: "dd" }));
    let line = "";
    raw.forEach((p, i) => { line += (i ? "L" : "M") + x(p.t).toFixed(1) + "," + y(p.v).toFixed(1); });
    svg.appendChild(svgEl("path", { d: line, class: "line" }));

    // trade markers: each fill at the equity of its time
    const equityAt = t => {
      let i = 0, j = raw.length - 1;
      while (j - i > 1) { const m = (i + j) >> 1; if (raw[m].t <= t) { i = m; } else { j = m; } }
      const a = raw[i], b = raw[j];
      return b.t === a.t ? a.v : a.v + (b.v - a.v) * Math.min(1, Math.max(0, (t - a.t) / (b.t - a.t)));
    };
    const marks = svgEl("g", { class: "marks" });
    for (const f of s.fills || []) {
      const t = parseTime(f.time);
      if (!isFinite(t) || t < t0 || t > t1) { continue; }
      const buy = String(f.side).toUpperCase() === "BUY";
      const cx = x(t), cy = y(equityAt(t));
      const pts = buy
        ? [[cx, cy + 2], [cx - 5, cy + 10], [cx + 5, cy + 10]]
        : [[cx, cy - 2], [cx - 5, cy - 10], [cx + 5, cy - 10]];
      const tri = svgEl("polygon", { points: pts.map(q => q[0].toFixed(1) + "," + q[1].toFixed(1)).join(" "),
                                     class: buy ? "buy" : "sell" });
      tri.appendChild(svgEl("title", {}, f.side + " " + fmtQty(f.quantity) + " " + f.instrument + " @ " +
                            fmtPrice(f.price) + " (order " + f.order + ", " + fmtTime(f.time) + ")"));
      marks.appendChild(tri);
    }
    svg.appendChild(marks);
  }

  // --- risk -------------------------------------------------------------------------------
  function meterRow(box, label, used, limit, share, text) {
    const row = el("div", null, "limit");
    const head = el("div", null, "limit-head");
    head.appendChild(el("span", label));
    head.appendChild(el("span", text, "limit-value" + (share >= 1 ? " neg" : share >= 0.8 ? " warn" : "")));
    row.appendChild(head);
    if (!none(share)) {
      const m = document.createElement("meter");
      m.min = 0; m.max = 1; m.low = 0.8; m.high = 0.99; m.optimum = 0;
      m.value = Math.max(0, Math.min(1, share));
      m.textContent = pct(share, 0);
      row.appendChild(m);
    }
    box.appendChild(row);
  }

  function renderRisk(s) {
    const box = byId("risk");
    box.replaceChildren();
    const risk = s.risk || {};
    const status = risk.status || "";
    const trading = s.trading || fallbackTrading(s);
    const head = el("div", null, "risk-head");
    head.appendChild(el("span", "risk " + (status || "not reported"), "st-" + (status || "none")));
    if (trading.state === "halted") {
      head.appendChild(el("span", "trading halted by " + (trading.by || "a rule") +
                          (trading.reason ? ": " + trading.reason : ""), "neg"));
    }
    box.appendChild(head);
    if (!none(s.drawdown)) {
      const share = none(risk.drawdown_limit) || !risk.drawdown_limit ? null : s.drawdown / risk.drawdown_limit;
      meterRow(box, "Drawdown", s.drawdown, risk.drawdown_limit, share,
               pct(s.drawdown) + (share === null ? " (no limit)" : " of " + pct(risk.drawdown_limit, 1) +
               " (" + pct(share, 0) + ")"));
    }
    if (!none(risk.daily_loss)) {
      const share = none(risk.daily_loss_limit) || !risk.daily_loss_limit ? null : risk.daily_loss / risk.daily_loss_limit;
      meterRow(box, "Daily loss", risk.daily_loss, risk.daily_loss_limit, share,
               pct(risk.daily_loss) + (share === null ? " (no limit)" : " of " + pct(risk.daily_loss_limit, 1) +
               " (" + pct(share, 0) + ")"));
    }
    const limits = s.limits || [];
    for (const u of limits) {
      meterRow(box, u.rule + ": " + u.measure, u.used, u.limit, u.share,
               fmtQty(u.used) + " of " + fmtQty(u.limit) + (none(u.share) ? "" : " (" + pct(u.share, 0) + ")"));
    }
    if (!limits.length) { box.appendChild(el("div", "no account-wide limits set", "empty")); }
    for (const n of risk.near || []) { box.appendChild(el("div", "near a limit: " + n, "warn")); }
    const halts = el("table", null, "wrap");
    halts.id = "halts";
    const wrap = el("div", null, "scroll");
    wrap.appendChild(halts);
    box.appendChild(el("h3", "Halts"));
    box.appendChild(wrap);
    table("halts", [
      { title: "Time", value: r => fmtTime(r.time, true) },
      { title: "Rule", value: r => r.rule },
      { title: "Reason", value: r => r.reason },
      { title: "Until", value: r => r.until ? fmtTime(r.until, true) : "end of run" },
    ], s.halts || [], "no halts: trading allowed");
  }

  // --- tables -----------------------------------------------------------------------------
  const ORDER_STATES = ["submitted", "accepted", "partially_filled", "filled", "cancelled",
                        "rejected", "denied", "expired"];

  function renderTables(s) {
    const positions = s.positions || [];
    const withRealized = positions.some(p => !none(p.realized));
    table("positions", [
      { title: "Instrument", value: r => r.instrument },
      { title: "Quantity", num: true, value: r => fmtQty(r.quantity) },
      { title: "Avg price", num: true, value: r => fmtPrice(r.avg_price) },
      { title: "Price", num: true, value: r => fmtPrice(r.price) },
      { title: "Value", num: true, value: r => fmtMoney(r.value) },
      { title: "Unrealized", num: true, value: r => fmtSigned(r.unrealized), cls: r => signClass(r.unrealized) },
      ...(withRealized ? [{ title: "Realized", num: true, value: r => fmtSigned(r.realized),
                            cls: r => signClass(r.realized) }] : []),
    ], positions, "flat");
    table("orders", [
      { title: "Id", num: true, value: r => r.id },
      { title: "Instrument", value: r => r.instrument },
      { title: "Side", value: r => r.side },
      { title: "Qty", num: true, value: r => fmtQty(r.quantity) },
      { title: "Filled", num: true, value: r => fmtQty(r.filled) },
      { title: "Type", value: r => r.type },
      { title: "Limit", num: true, value: r => fmtPrice(r.limit) },
      { title: "Stop", num: true, value: r => fmtPrice(r.stop) },
      { title: "Status", value: r => r.status },
      { title: "Tag", value: r => r.tag },
    ], s.orders || [], "no working orders");

    const counts = s.order_counts || {};
    const keys = ORDER_STATES.filter(k => k in counts).concat(
      Object.keys(counts).filter(k => !ORDER_STATES.includes(k)).sort());
    const lat = (s.latency_ms || []).slice().sort((a, b) => a - b);
    const rows = keys.map(k => [k.replace(/_/g, " "), fmtQty(counts[k]),
                                k === "rejected" || k === "denied" ? (counts[k] ? "neg" : "") : ""]);
    rows.push(["fills (all)", fmtQty(s.fills_total || 0), ""]);
    rows.push(["bars handled", fmtQty(s.bars || 0), ""]);
    if (lat.length) {
      rows.push(["acknowledgement p50 / max", lat[lat.length >> 1].toFixed(1) + " / " +
                 lat[lat.length - 1].toFixed(1) + " ms", ""]);
    }
    table("order-counts", [
      { title: "Status", value: r => r[0] },
      { title: "Count", num: true, value: r => r[1], cls: r => r[2] },
    ], rows, "no orders yet");

    table("data", [
      { title: "Instrument", value: r => r.instrument },
      { title: "Status", value: r => r.status + (r.detail ? ": " + r.detail : ""),
        cls: r => "data-" + String(r.status).replace(/\s+/g, "-") },
      { title: "Last bar", value: r => r.last_bar_time ? fmtTime(r.last_bar_time, true) +
        (r.bar_size ? " (" + r.bar_size + ")" : "") : "none" },
      { title: "Age", num: true, value: r => fmtAge(r.last_bar_age_s) },
      { title: "Last", num: true, value: r => fmtPrice(r.last_price) },
      { title: "Bid", num: true, value: r => fmtPrice(r.bid) },
      { title: "Ask", num: true, value: r => fmtPrice(r.ask) },
      { title: "Quote age", num: true, value: r => fmtAge(r.quote_age_s) },
    ], s.data || [], "no market data reported");

    const fills = s.fills || [];
    setText("fills-count", none(s.fills_total) ? "" :
            fills.length < s.fills_total ? "(newest " + fills.length + " of " + s.fills_total + ")"
                                          : "(" + fills.length + ")");
    table("fills", [
      { title: "Time", value: r => fmtTime(r.time, true) },
      { title: "Order", num: true, value: r => r.order },
      { title: "Instrument", value: r => r.instrument },
      { title: "Side", value: r => r.side },
      { title: "Qty", num: true, value: r => fmtQty(r.quantity) },
      { title: "Price", num: true, value: r => fmtPrice(r.price) },
      { title: "Comm.", num: true, value: r => fmtMoney(r.commission) },
    ], fills, "no fills yet");

    table("trades", [
      { title: "Instrument", value: r => r.instrument },
      { title: "Side", value: r => r.side },
      { title: "Qty", num: true, value: r => fmtQty(r.quantity) },
      { title: "Entry", value: r => fmtTime(r.entry_time, true) },
      { title: "at", num: true, value: r => fmtPrice(r.entry_price) },
      { title: "Exit", value: r => r.open ? "open" : fmtTime(r.exit_time, true) },
      { title: "at", num: true, value: r => fmtPrice(r.exit_price) },
      { title: "P&L", num: true, value: r => fmtSigned(r.open ? r.unrealized : r.pnl),
        cls: r => signClass(r.open ? r.unrealized : r.pnl) },
      { title: "Comm.", num: true, value: r => fmtMoney(r.commission) },
    ], s.trades || [], s.trades ? "no round trips yet" : "not reported by this version");

    table("checks", [
      { title: "Check", value: r => r.name },
      { title: "Status", value: r => r.status, cls: r => "st-" + r.status },
      { title: "Detail", value: r => r.detail, cls: () => "detail" },
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
      ["Quotes conflated (inbox / ticks)",
       fmtQty(load.conflated) + " / " + fmtQty(load.ticks_conflated || 0), false],
      ["Events handled", fmtQty(load.handled), false],
    ] : [], "not measured (backtest, or no heartbeat yet)");

    table("alerts", [
      { title: "Time", value: r => fmtTime(r.time, true) },
      { title: "Severity", value: r => r.severity, cls: r => "sev-" + r.severity },
      { title: "Alert", value: r => r.title, cls: () => "detail" },
      { title: "Channel", value: r => r.channel + (r.ok ? "" : " (failed" + (r.error ? ": " + r.error : "") + ")") },
    ], s.alerts || [], "no alerts");
  }

  // --- controls ---------------------------------------------------------------------------
  let controlsBuilt = "";   // what the panel was built for, so a poll does not rebuild it
  let answer = null;        // the answer to the last action sent from this page
  let confirming = null;    // what is typed in flatten's confirmation while it is open, else null

  const ACTIONS = {
    pause: "Pause new orders", resume: "Resume", cancel_all: "Cancel all orders", flatten: "Flatten all…",
  };

  async function send(action, payload) {
    answer = { action: action, text: "sending…", ok: true };
    renderControls(last, true);
    try {
      const response = await fetch("api/control/" + action, {
        method: "POST", cache: "no-store",
        headers: Object.assign({ "Content-Type": "application/json" }, auth),
        body: JSON.stringify(payload),
      });
      const text = await response.text();
      let detail = text.trim();
      try {
        const j = JSON.parse(text);
        detail = j.detail || j.error || (j.accepted ? "accepted" : text.trim());
      } catch (err) { /* a plain-text answer */ }
      answer = { action: action, ok: response.ok,
                 text: (response.ok ? "accepted" : "refused (HTTP " + response.status + ")") +
                       (detail ? ": " + detail : "") };
    } catch (err) {
      answer = { action: action, ok: false, text: "not sent: the dashboard is unreachable" };
    }
    renderControls(last, true);
    poll();
  }

  function renderControls(s, force) {
    const box = byId("controls");
    const controls = (s && s.controls) || { enabled: false };
    const trading = (s && (s.trading || fallbackTrading(s))) || { state: "unknown" };
    const key = JSON.stringify([controls.enabled, !!token, trading.state, controls.actions, controls.last,
                                s && s.stopped]);
    if (key === controlsBuilt && !force) { return; }
    controlsBuilt = key;
    const reason = byId("control-reason");
    const typed = reason ? reason.value : "";
    box.replaceChildren();
    if (!controls.enabled) {
      box.appendChild(el("p", "Controls are off: they need the dashboard's access token. Start the " +
        "run with $IBKRFW_DASHBOARD_TOKEN set (16 characters or more), then open this page with " +
        "?token=<the token> at the end of its address.", "hint"));
      return;
    }
    if (!token) {
      box.appendChild(el("p", "Controls need the access token: open this page with ?token=<the token> " +
        "at the end of its address (the page keeps it in memory and takes it off the address bar).", "hint"));
      return;
    }
    const stopped = !!(s && s.stopped);
    const actions = controls.actions || Object.keys(ACTIONS);
    const buttons = el("div", null, "buttons");
    for (const a of actions) {
      const b = el("button", ACTIONS[a] || a, "btn " + a);
      b.type = "button";
      b.id = "control-" + a.replace(/_/g, "-");
      b.disabled = stopped || (a === "pause" && trading.state !== "active") ||
        (a === "resume" && trading.state !== "paused" && trading.state !== "halted");
      b.addEventListener("click", () => a === "flatten" ? confirmFlatten() : send(a, reasonPayload()));
      buttons.appendChild(b);
    }
    box.appendChild(buttons);
    const input = el("input");
    input.id = "control-reason";
    input.type = "text";
    input.placeholder = "reason (optional, journalled)";
    input.value = typed;
    input.maxLength = 200;
    box.appendChild(input);
    const confirmBox = el("div", null, "confirm");
    confirmBox.id = "flatten-confirm";
    confirmBox.hidden = true;
    box.appendChild(confirmBox);
    if (answer) {
      const p = el("p", answer.action + ": " + answer.text, answer.ok ? "answer" : "answer neg");
      p.id = "control-answer";
      box.appendChild(p);
    }
    if (confirming !== null && !stopped) { confirmFlatten(); }  // a poll rebuilt the panel
    if (controls.last) {
      const l = controls.last;
      box.appendChild(el("p", "last action: " + l.action + " at " + fmtTime(l.time, true) + ": " +
                          (l.result || "") + (l.detail ? " (" + l.detail + ")" : ""), "note"));
    }
  }

  function reasonPayload() {
    const r = byId("control-reason");
    const text = r ? r.value.trim() : "";
    return text ? { reason: text } : {};
  }

  function confirmFlatten() {
    const box = byId("flatten-confirm");
    if (!box) { confirming = null; return; }
    if (confirming === null) { confirming = ""; }
    box.replaceChildren();
    box.appendChild(el("p", "Flatten sends market orders to close every position and cancels the " +
                        "working orders. Type flatten to confirm.", "warn"));
    const input = el("input");
    input.id = "flatten-typed";
    input.type = "text";
    input.autocomplete = "off";
    input.placeholder = "flatten";
    input.value = confirming;
    const go = el("button", "Confirm flatten", "btn flatten");
    go.type = "button";
    go.id = "flatten-go";
    const typed = () => input.value.trim().toLowerCase() === "flatten";
    go.disabled = !typed();
    input.addEventListener("input", () => { confirming = input.value; go.disabled = !typed(); });
    go.addEventListener("click", () => {
      if (!typed()) { return; }
      confirming = null;
      send("flatten", Object.assign({ confirm: "flatten" }, reasonPayload()));
    });
    const cancel = el("button", "Cancel", "btn");
    cancel.type = "button";
    cancel.addEventListener("click", () => { confirming = null; box.hidden = true; box.replaceChildren(); });
    box.append(input, go, cancel);
    box.hidden = false;
    input.focus();
  }

  // --- polling ----------------------------------------------------------------------------
  function render(s) {
    last = s;
    renderHeader(s);
    renderCards(s);
    chart(s);
    renderRisk(s);
    renderTables(s);
    renderControls(s, false);
    renderUpdated();
  }

  let timer = null;
  let inFlight = false, again = false;  // one poll at a time, so one chain of timers
  async function poll() {
    if (inFlight) { again = true; return; }
    inFlight = true;
    window.clearTimeout(timer);
    try {
      const response = await fetch("api/state", { cache: "no-store", headers: auth });
      if (!response.ok) {
        throw new Error("HTTP " + response.status + (response.status === 401
          ? ": the page needs its access token (open it with ?token=)" : ""));
      }
      const s = await response.json();
      receivedAt = Date.now();
      failure = "";
      const served = Date.parse(response.headers.get("Date") || "");
      const built = parseTime(s.updated);
      builtAgo = isFinite(served) && isFinite(built) ? Math.max(0, (served - built) / 1000) : null;
      render(s);
    } catch (err) {
      failure = err && err.message && err.message.startsWith("HTTP") ? err.message : "no answer";
      const badge = byId("health-badge");
      badge.textContent = "unreachable";
      badge.className = "badge failing";
      renderUpdated();
    } finally {
      polls += 1;
      body.dataset.polls = String(polls);
      inFlight = false;
      timer = window.setTimeout(poll, again ? 0 : refresh);
      again = false;
    }
  }

  let pending = false;
  window.addEventListener("resize", () => {
    if (pending || !last) { return; }
    pending = true;
    window.requestAnimationFrame(() => { pending = false; chart(last); });
  });
  window.setInterval(renderUpdated, 1000);
  poll();
})();
