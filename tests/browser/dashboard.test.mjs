// The dashboard in a real headless Chromium against `gateway-svc demo`: positions render, a
// position change shows up, and a simulated gateway restart is marked stale, then clears. Every
// wait is a deadline scaled by IBGW_TEST_PATIENCE (support.mjs); no test asserts a duration.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { request as httpRequest } from "node:http";
import * as support from "./support.mjs";
import { ROOT, control, patient, start, startDemo, stop } from "./support.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
let demo, dash, browser, page;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `Chromium is required at ${CHROMIUM} (scripts/test installs Debian's chromium)`);
  demo = await startDemo();
  dash = await start("dashboard-client", ["--gateway", `http://${demo.info.grpc}`, "--listen", "127.0.0.1:0"]);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: patient(30000),
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync",
    ],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  page.setDefaultTimeout(patient(30000)); // every locator read and page.goto
  await page.goto(`http://${dash.info.listen}/`);
});

after(async () => {
  await browser?.close();
  if (dash) assert.equal(await stop(dash.proc), 0, "dashboard-client exits 0 on SIGTERM");
  if (demo) assert.equal(await stop(demo.proc), 0, "gateway-svc exits 0 on SIGTERM");
});

const qty = (key) => page.locator(`#positions tbody tr[data-key="${key}"] td.qty`);

test("positions, summary and session state render", async () => {
  // Rows, session state, freshness and summary arrive separately: wait for all of them.
  await page.waitForFunction(() => document.querySelectorAll("#positions tbody tr").length >= 6
    && document.querySelector("#session-state").textContent === "READY"
    && document.querySelector("#positions-freshness").textContent === "LIVE"
    && /NetLiquidation/.test(document.querySelector("#summary tbody").textContent), null, { timeout: patient(10000) });
  assert.equal(await qty("DU1234567:265598").textContent(), "100");
  assert.equal(await page.locator("#session-state").textContent(), "READY");
  assert.equal(await page.locator("#positions-freshness").textContent(), "LIVE");
  const summary = await page.locator("#summary tbody").textContent();
  assert.match(summary, /NetLiquidation/);
  assert.match(summary, /125430\.55/);
  if (process.env.IBGW_SCREENSHOT) await page.screenshot({ path: path.join(ROOT, process.env.IBGW_SCREENSHOT) });
});
test("cash is shown per currency, base currency apart, never summed", async () => {
  const cash = (ccy) => page.locator(`#summary tbody tr[data-key="DU1234567:CashBalance:${ccy}"]`);
  await page.waitForFunction(() => document.querySelectorAll('#summary tbody tr[data-key^="DU1234567:CashBalance:"]').length >= 3, null, { timeout: patient(10000) });
  for (const ccy of ["BASE", "EUR", "USD"]) {
    const row = await cash(ccy).textContent();
    assert.match(row, new RegExp(`CashBalance.*${ccy}`), `a CashBalance row in ${ccy}: ${row}`);
  }
  const eur = await cash("EUR").locator("td.num").textContent();
  const usd = await cash("USD").locator("td.num").textContent();
  assert.notEqual(eur, usd, "each currency keeps its own amount");
});
