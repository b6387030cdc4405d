// The dashboard in a real headless Chromium against `gateway-svc demo`: positions render, a
// position change shows within 1 s, and a simulated gateway restart is marked stale, then clears.
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { ROOT, control, eventually, start, startDemo, stop } from "./support.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
let demo, dash, browser, page;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `Chromium is required at ${CHROMIUM} (scripts/test installs Debian's chromium)`);
  demo = await startDemo();
  dash = await start("dashboard-client", ["--gateway", `http://${demo.info.grpc}`, "--listen", "127.0.0.1:0"]);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync",
    ],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  await page.goto(`http://${dash.info.listen}/`);
});

after(async () => {
  await browser?.close();
  if (dash) assert.equal(await stop(dash.proc), 0, "dashboard-client exits 0 on SIGTERM");
  if (demo) assert.equal(await stop(demo.proc), 0, "gateway-svc exits 0 on SIGTERM");
});

const qty = (key) => page.locator(`#positions tbody tr[data-key="${key}"] td.qty`);

test("positions, summary and session state render", async () => {
  await page.waitForFunction(() => document.querySelectorAll("#positions tbody tr").length >= 6, null, { timeout: 10000 });
  assert.equal(await qty("DU1234567:265598").textContent(), "100");
  assert.equal(await page.locator("#session-state").textContent(), "READY");
  assert.equal(await page.locator("#positions-freshness").textContent(), "LIVE");
  const summary = await page.locator("#summary tbody").textContent();
  assert.match(summary, /NetLiquidation/);
  assert.match(summary, /125430\.55/);
  if (process.env.IBGW_SCREENSHOT) await page.screenshot({ path: path.join(ROOT, process.env.IBGW_SCREENSHOT) });
});

test("a position change reaches the page within 1 s", async () => {
  const positions = await control(demo.info.sim_control, "GET", "/positions");
  const msft = positions.find((p) => p.symbol === "MSFT");
  const started = Date.now();
  await control(demo.info.sim_control, "PATCH", "/positions", [{ ...msft, quantity: "77" }]);
  await page.waitForFunction(() => document.querySelector('#positions tbody tr[data-key="DU1234567:272093"] td.qty')?.textContent === "77", null, { timeout: 1000 });
  const took = Date.now() - started;
  assert.ok(took <= 1000, `took ${took} ms`);
});

test("a gateway restart is marked stale, then clears", async () => {
  await control(demo.info.sim_control, "POST", "/faults", { kind: "restart", down_ms: 1500 });
  await page.waitForFunction(() => document.querySelector("#banner").className === "stale", null, { timeout: 5000 });
  const banner = await page.locator("#banner").textContent();
  assert.match(banner, /^STALE since \S+/, banner);
  assert.equal(await page.locator("#positions-freshness").textContent(), "STALE");
  assert.equal(await page.locator("#positions tbody tr").count() >= 6, true, "last known positions stay on screen");
  assert.ok(await page.locator("#positions tbody tr.stale-data").count() >= 6, "rows are marked stale");
  if (process.env.IBGW_SCREENSHOT_STALE) await page.screenshot({ path: path.join(ROOT, process.env.IBGW_SCREENSHOT_STALE) });
  await page.waitForFunction(() => document.querySelector("#positions-freshness").textContent === "LIVE", null, { timeout: 15000 });
  assert.equal(await page.locator("#banner").getAttribute("class"), "");
  assert.equal(await page.locator("#epoch").textContent(), "2");
  assert.equal(await page.locator("#reconnects").textContent(), "1");
});

test("the dashboard says gateway-svc is unreachable when it is", async () => {
  // Stop gateway-svc (and its simulator): the page keeps the last data and says why it is stale.
  await stop(demo.proc);
  await page.waitForFunction(() => document.querySelector("#banner").className === "down", null, { timeout: 10000 });
  assert.match(await page.locator("#banner").textContent(), /gateway-svc unreachable since/);
  assert.equal(await page.locator("#gateway-link").textContent(), "unreachable");
  assert.ok(await page.locator("#positions tbody tr").count() >= 6);
  // gateway-svc comes back on the same address: the dashboard reconnects its streams by itself.
  demo = await start("gateway-svc", [
    "demo", "--grpc-listen", demo.info.grpc, "--ops-listen", "127.0.0.1:0",
    "--sim-listen", "127.0.0.1:0", "--sim-control-listen", "127.0.0.1:0",
  ]);
  await page.waitForFunction(() => document.querySelector("#positions-freshness").textContent === "LIVE", null, { timeout: 15000 });
  assert.equal(await page.locator("#gateway-link").textContent(), "reachable");
  assert.equal(await qty("DU1234567:272093").textContent(), "40", "fresh data from the new session");
});
