// The dashboard page: renders each `state` event from /events (served as a file: the
// Content-Security-Policy allows no inline script).
"use strict";
const $ = (id) => document.getElementById(id);
// Summary tags shown. CashBalance is a ledger tag: one row per currency the account holds plus
// BASE (the account's base currency), so rows are keyed by currency too and never summed.
const TAGS = ["NetLiquidation", "BuyingPower", "AvailableFunds", "TotalCashValue", "ExcessLiquidity", "GrossPositionValue", "CashBalance"];

function time(iso) { return iso ? new Date(iso).toLocaleTimeString() : "–"; }

function pill(el, text, cls) { el.textContent = text; el.className = "pill " + (cls || text); }

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
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

  const staleClass = pf.state === "LIVE" ? "" : "stale-data";
  const body = document.querySelector("#positions tbody");
  body.replaceChildren();
  for (const p of d.positions.items) {
    const tr = document.createElement("tr");
    tr.dataset.key = p.key;
    if (staleClass) tr.className = staleClass;
    cell(tr, p.account); cell(tr, p.symbol); cell(tr, p.contract);
    cell(tr, p.quantity, "num qty"); cell(tr, p.avg_cost, "num"); cell(tr, p.currency);
    body.appendChild(tr);
  }

  const accounts = [...new Set(d.positions.items.map((p) => p.account).concat(d.summary.items.map((s) => s.account)))];
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

function connect() {
  const es = new EventSource("/events");
  es.addEventListener("state", (e) => render(JSON.parse(e.data)));
  es.onerror = () => {
    // The browser retries on its own; say so meanwhile.
    pill($("gateway-link"), "dashboard offline", "down");
  };
}
connect();
