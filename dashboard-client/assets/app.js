// The dashboard page: renders each `state` event from /events and draws each account's net
// liquidation and daily PnL since the page opened (served as a file: the Content-Security-Policy
// allows no inline script or style, so the charts are plain SVG built here, styled by app.css).
"use strict";
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
// Summary tags shown. CashBalance is a ledger tag: one row per currency the account holds plus
// BASE (the account's base currency), so rows are keyed by currency too and never summed.
const TAGS = ["NetLiquidation", "BuyingPower", "AvailableFunds", "TotalCashValue", "ExcessLiquidity", "GrossPositionValue", "CashBalance"];

// Chart history lives in this page: a bounded ring per account and series, kept through gateway
// and gateway-svc restarts (the page stays open). While data is not LIVE no point is recorded:
// the line breaks (a gap), it never drops to zero.
const WINDOW_MS = 15 * 60 * 1000; // the ring keeps the last 15 minutes
const MAX_POINTS = 3000; // and never more points than this per series
const SAMPLE_MS = 1000; // a point at least every second, and at every change
const SERIES = [
  { id: "nlv", title: "Net liquidation", signed: false },
  { id: "pnl", title: "Daily PnL", signed: true },
];
const history = new Map(); // "account|series" -> { account, series, currency, state, reason, points: [{ t, v }] }
let latest = null; // the last state event
let online = false; // whether the page's own event stream is up

function time(iso) { return iso ? new Date(iso).toLocaleTimeString() : "–"; }

function pill(el, text, cls) { el.textContent = text; el.className = "pill " + (cls || text); }

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

/** A decimal string as a number, or null (missing or not a number: never 0). */
function num(s) {
  if (s === undefined || s === null || String(s).trim() === "") return null;
  const x = Number(s);
  return Number.isFinite(x) ? x : null;
}

/** An amount to read: two decimals; with `signed`, "+" for a gain and "-" for a loss, so the
 * colour is never the only cue. Returns { text, cls } (cls: gain, loss, flat or na). */
function money(s, signed) {
  const x = num(s);
  if (x === null) return { text: "n/a", cls: "na" };
  const digits = Math.abs(x).toFixed(2);
  if (Number(digits) === 0) return { text: digits, cls: "flat" };
  if (x < 0) return { text: "-" + digits, cls: signed ? "loss" : "" };
  return { text: (signed ? "+" : "") + digits, cls: signed ? "gain" : "" };
}

function moneyCell(tr, s, signed, extra) {
  const m = money(s, signed);
  const td = cell(tr, m.text, ["num", m.cls, extra].filter(Boolean).join(" "));
  if (m.cls === "gain") td.title = "gain";
  if (m.cls === "loss") td.title = "loss";
  return td;
}

function accountsOf(d) {
  return [...new Set(d.positions.items.map((p) => p.account)
    .concat(d.summary.items.map((s) => s.account))
    .concat(d.account_pnl.items.map((p) => p.account)))].sort();
}

function render(d) {
  const link = d.gateway;
  pill($("gateway-link"), link.reachable ? "reachable" : "unreachable", link.reachable ? "up" : "down");
  const h = d.health;
  if (h) {
    pill($("session-state"), h.state);
    $("session-reason").textContent = h.reason + (h.since ? " (since " + time(h.since) + ")" : "");
    $("epoch").textContent = h.epoch;
    $("reconnects").textContent = h.reconnects;
    $("client-id").textContent = h.client_id;
  }
  const pf = d.positions.freshness;
  pill($("positions-freshness"), pf.state);
  pill($("summary-freshness"), d.summary.freshness.state);
  pill($("account-pnl-freshness"), d.account_pnl.freshness.state);
  pill($("position-pnl-freshness"), d.position_pnl.freshness.state);
  $("positions-as-of").textContent = time(d.positions.as_of);

  const banner = $("banner");
  if (!link.reachable && link.down_since) {
    banner.className = "down";
    banner.textContent = "gateway-svc unreachable since " + time(link.down_since) + " — showing last known data";
  } else if (pf.state === "STALE") {
    banner.className = "stale";
    banner.textContent = "STALE since " + time(pf.since) + " — " + pf.reason;
  } else if (pf.state === "UNKNOWN") {
    banner.className = "stale";
    banner.textContent = "No data yet — " + pf.reason;
  } else {
    banner.className = "";
    banner.textContent = "";
  }

  renderPositions(d);
  renderAccountPnl(d);

  const accounts = accountsOf(d);
  $("accounts").replaceChildren(...accounts.map((a) => { const s = document.createElement("span"); s.textContent = a; return s; }));

  const sbody = document.querySelector("#summary tbody");
  sbody.replaceChildren();
  const sStale = d.summary.freshness.state === "LIVE" ? "" : "stale-data";
  for (const s of d.summary.items.filter((s) => TAGS.includes(s.tag))) {
    const tr = document.createElement("tr");
    tr.dataset.key = s.account + ":" + s.tag + ":" + s.currency;
    if (sStale) tr.className = sStale;
    cell(tr, s.account); cell(tr, s.tag); cell(tr, s.value, "num"); cell(tr, s.currency);
    sbody.appendChild(tr);
  }
  document.body.dataset.updated = String(Date.now());
}

/** Why a PnL kind cannot be shown at all, or null. */
function pnlMissing(view) {
  return view.freshness.state === "UNKNOWN" ? "no PnL yet" : null;
}

function renderPositions(d) {
  const pf = d.positions.freshness;
  const staleClass = pf.state === "LIVE" ? "" : "stale-data";
  const pnl = d.position_pnl;
  const byKey = new Map(pnl.items.map((r) => [r.key, r]));
  const missing = pnlMissing(pnl);
  const pnlStale = pnl.freshness.state === "STALE" ? "stale-cell" : "";
  const body = document.querySelector("#positions tbody");
  body.replaceChildren();
  for (const p of d.positions.items) {
    const tr = document.createElement("tr");
    tr.dataset.key = p.key;
    if (staleClass) tr.className = staleClass;
    cell(tr, p.account); cell(tr, p.symbol); cell(tr, p.contract);
    cell(tr, p.quantity, "num qty"); cell(tr, p.avg_cost, "num"); cell(tr, p.currency);
    // Joined by account and contract id; figures for another size (one side has not caught up
    // with a trade yet) are not this position's.
    const r = byKey.get(p.key);
    let why = missing;
    if (!why && !r) why = "no PnL for this position";
    if (!why && num(r.quantity) !== num(p.quantity)) why = "PnL is for quantity " + r.quantity + ", updating";
    if (why) {
      const td = cell(tr, "n/a (" + why + ")", "na pnl-na");
      td.colSpan = 3;
      td.title = missing ? pnl.freshness.reason : why;
    } else {
      const ccy = r.currency || "BASE";
      moneyCell(tr, r.market_value, false, "mv " + pnlStale).title = "market value in " + ccy;
      moneyCell(tr, r.unrealized_pnl, true, "upnl " + pnlStale);
      moneyCell(tr, r.daily_pnl, true, "dpnl " + pnlStale);
      if (pnlStale) tr.dataset.pnl = "STALE";
    }
    body.appendChild(tr);
  }
}

function renderAccountPnl(d) {
  const view = d.account_pnl;
  const stale = view.freshness.state === "LIVE" ? "" : "stale-data";
  const missing = pnlMissing(view);
  const byAccount = new Map(view.items.map((r) => [r.account, r]));
  const body = document.querySelector("#account-pnl tbody");
  body.replaceChildren();
  for (const account of accountsOf(d)) {
    const tr = document.createElement("tr");
    tr.dataset.key = account;
    if (stale) tr.className = stale;
    cell(tr, account);
    const r = byAccount.get(account);
    if (missing || !r) {
      const td = cell(tr, "n/a (" + (missing || "no PnL for this account") + ")", "na");
      td.colSpan = 4;
      if (missing) td.title = view.freshness.reason;
    } else {
      moneyCell(tr, r.daily_pnl, true, "dpnl");
      moneyCell(tr, r.unrealized_pnl, true, "upnl");
      moneyCell(tr, r.realized_pnl, true, "rpnl");
      cell(tr, r.currency || "BASE");
    }
    body.appendChild(tr);
  }
}

// --- History and charts ------------------------------------------------------------------

/** The account's net liquidation row: the base-currency (BASE) row when there is one, else the
 * first as reported (IB's NetLiquidation is in the account's currency), labelled with it. */
function netLiquidation(d, account) {
  const rows = d.summary.items.filter((s) => s.account === account && s.tag === "NetLiquidation");
  return rows.find((r) => r.currency === "BASE") || rows[0] || null;
}

/** Records one sample per account and series; `null` (a gap) whenever the data is not LIVE. */
function record(d, now) {
  const reachable = online && d.gateway.reachable;
  for (const account of accountsOf(d)) {
    const nlv = netLiquidation(d, account);
    const nlvLive = reachable && d.summary.freshness.state === "LIVE";
    push(account, "nlv", nlv ? nlv.currency || "no currency" : null, nlvLive && nlv ? num(nlv.value) : null,
      reachable ? d.summary.freshness : { state: "STALE", reason: online ? "gateway-svc unreachable" : "dashboard offline" }, now);
    const pnl = d.account_pnl.items.find((r) => r.account === account);
    const pnlLive = reachable && d.account_pnl.freshness.state === "LIVE";
    push(account, "pnl", pnl ? pnl.currency || "BASE" : null, pnlLive && pnl ? num(pnl.daily_pnl) : null,
      reachable ? d.account_pnl.freshness : { state: "STALE", reason: online ? "gateway-svc unreachable" : "dashboard offline" }, now);
  }
}

function push(account, series, currency, v, freshness, now) {
  const key = account + "|" + series;
  let h = history.get(key);
  if (!h) {
    if (v === null) return; // a series starts at its first value
    h = { account, series, currency, state: "LIVE", reason: "", points: [] };
    history.set(key, h);
  }
  if (v !== null && currency !== h.currency) {
    // Another currency's amounts never share a line with these: start over.
    h.currency = currency;
    h.points = [];
  }
  h.state = v === null ? (freshness.state === "LIVE" ? "UNKNOWN" : freshness.state) : "LIVE";
  h.reason = v === null ? freshness.reason || "" : "";
  const last = h.points[h.points.length - 1];
  if (last && last.v === null && v === null) return; // one marker per gap: it lasts until the next value
  if (last && last.v === v && now - last.t < SAMPLE_MS) return;
  h.points.push({ t: now, v });
  const from = now - WINDOW_MS;
  let drop = 0;
  while (drop < h.points.length - 1 && (h.points[drop].t < from || h.points.length - drop > MAX_POINTS)) drop++;
  if (drop) h.points.splice(0, drop);
  while (h.points.length && h.points[0].v === null) h.points.shift(); // never start with a gap
}

function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

const W = 560, H = 150, L = 78, R = 14, T = 12, B = 22;

/** Draws one series: the line breaks at every gap, a hatched band marks where data was stale. */
function draw(fig, h, now) {
  const svg = fig.querySelector("svg");
  const spec = SERIES.find((s) => s.id === h.series);
  const pts = h.points;
  const values = pts.filter((p) => p.v !== null).map((p) => p.v);
  const t0 = pts.length ? Math.max(pts[0].t, now - WINDOW_MS) : now - WINDOW_MS;
  const span = Math.max(now - t0, 30000); // at least 30 s wide: the first seconds are not stretched
  let lo = values.length ? Math.min(...values) : 0, hi = values.length ? Math.max(...values) : 1;
  if (hi - lo < 1e-9) { const pad = Math.max(Math.abs(hi) * 0.001, 1); lo -= pad; hi += pad; }
  const pad = (hi - lo) * 0.08; lo -= pad; hi += pad;
  const x = (t) => L + ((t - t0) / span) * (W - L - R);
  const y = (v) => T + ((hi - v) / (hi - lo)) * (H - T - B);
  const f = (n) => n.toFixed(1);

  const parts = [];
  const bands = [];
  let penUp = true, segments = 0, gaps = 0;
  for (let i = 0; i < pts.length; i++) {
    const p = pts[i];
    if (p.v === null) {
      gaps++;
      penUp = true;
      const next = pts.slice(i + 1).find((q) => q.v !== null);
      bands.push([x(p.t), x(next ? next.t : now)]);
      continue;
    }
    if (penUp) segments++;
    parts.push((penUp ? "M" : "L") + f(x(p.t)) + " " + f(y(p.v)));
    penUp = false;
  }

  const children = [el("rect", { class: "plot", x: L, y: T, width: W - L - R, height: H - T - B })];
  for (const [a, b] of bands) {
    children.push(el("rect", { class: "stale-band", x: f(a), y: T, width: f(Math.max(b - a, 2)), height: H - T - B }));
  }
  if (spec.signed && lo < 0 && hi > 0) {
    children.push(el("line", { class: "zero", x1: L, x2: W - R, y1: f(y(0)), y2: f(y(0)) }));
  }
  const label = (v) => (spec.signed ? money(v, true).text : money(v, false).text);
  if (values.length) {
    children.push(el("text", { class: "axis", x: L - 6, y: T + 9, "text-anchor": "end" }, label(hi)));
    children.push(el("text", { class: "axis", x: L - 6, y: H - B, "text-anchor": "end" }, label(lo)));
  }
  children.push(el("text", { class: "axis", x: L, y: H - 6 }, new Date(t0).toLocaleTimeString()));
  children.push(el("text", { class: "axis", x: W - R, y: H - 6, "text-anchor": "end" }, "now"));
  children.push(el("path", { class: "line " + h.series, d: parts.join(" ") }));
  const lastLive = [...pts].reverse().find((p) => p.v !== null);
  if (lastLive) children.push(el("circle", { class: "last " + h.series, cx: f(x(lastLive.t)), cy: f(y(lastLive.v)), r: 3 }));
  if (h.state !== "LIVE") {
    children.push(el("text", { class: "stale-label", x: W - R - 4, y: T + 14, "text-anchor": "end" }, h.state + " — no points"));
  }
  svg.replaceChildren(...children);

  const last = lastLive ? lastLive.v : null;
  Object.assign(svg.dataset, {
    state: h.state,
    points: String(values.length),
    segments: String(segments),
    gaps: String(gaps),
    last: last === null ? "" : String(last),
    min: values.length ? String(Math.min(...values)) : "",
    max: values.length ? String(Math.max(...values)) : "",
    currency: h.currency,
  });
  svg.setAttribute("aria-label", `${h.account} ${spec.title} in ${h.currency}: ${last === null ? "no value" : label(last)}, ` +
    `${values.length} points, ${gaps} gaps${h.state === "LIVE" ? "" : ", now " + h.state}`);
  fig.classList.toggle("stale", h.state !== "LIVE");
  const cap = fig.querySelector("figcaption");
  const value = last === null ? { text: "n/a", cls: "na" } : money(String(last), spec.signed);
  const v = document.createElement("b");
  v.textContent = value.text;
  v.className = "value " + value.cls;
  const state = document.createElement("span");
  if (h.state !== "LIVE") { pill(state, h.state); state.title = h.reason; }
  cap.replaceChildren(`${h.account} · ${spec.title} (${h.currency}) `, v, " ", state);
}

function drawCharts(now) {
  const box = $("charts");
  const accounts = [...new Set([...history.values()].map((h) => h.account))].sort();
  if (!accounts.length) return;
  if (box.querySelector("p.meta")) box.replaceChildren();
  for (const account of accounts) {
    let row = [...box.children].find((r) => r.dataset.account === account);
    if (!row) {
      row = document.createElement("div");
      row.className = "chart-row";
      row.dataset.account = account;
      for (const s of SERIES) {
        const fig = document.createElement("figure");
        fig.className = "chart";
        fig.dataset.series = s.id;
        fig.appendChild(document.createElement("figcaption"));
        fig.appendChild(el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "chart", "data-account": account, "data-series": s.id }));
        row.appendChild(fig);
      }
      box.appendChild(row);
    }
    for (const s of SERIES) {
      const h = history.get(account + "|" + s.id);
      const fig = row.querySelector(`figure[data-series="${s.id}"]`);
      if (h) draw(fig, h, now);
    }
  }
}

function sample() {
  if (!latest) return;
  const now = Date.now();
  record(latest, now);
  drawCharts(now);
}

function connect() {
  const es = new EventSource("/events");
  es.addEventListener("state", (e) => {
    online = true;
    latest = JSON.parse(e.data);
    render(latest);
    sample();
  });
  es.onerror = () => {
    // The browser retries on its own; say so meanwhile, and record nothing while offline.
    online = false;
    pill($("gateway-link"), "dashboard offline", "down");
    sample();
  };
}
setInterval(sample, SAMPLE_MS);
connect();
