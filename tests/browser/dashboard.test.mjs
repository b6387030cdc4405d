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

test("a position change reaches the page", async (t) => {
  // How fast is measured by ibgw-bench (docs/BENCHMARKS.md), not asserted here: on a loaded
  // machine any fixed bound is a coin toss. The time taken is reported as a diagnostic.
  const positions = await control(demo.info.sim_control, "GET", "/positions");
  const msft = positions.find((p) => p.symbol === "MSFT");
  const started = Date.now();
  await control(demo.info.sim_control, "PATCH", "/positions", [{ ...msft, quantity: "77" }]);
  await page.waitForFunction(() => document.querySelector('#positions tbody tr[data-key="DU1234567:272093"] td.qty')?.textContent === "77", null, { timeout: patient(10000) });
  t.diagnostic(`the change reached the page in ${Date.now() - started} ms`);
});

test("a gateway restart is marked stale, then clears", async () => {
  // The outage is the window in which the page must be seen stale, so it scales with the
  // patience too. The stale page is read in one evaluation, at the moment it is seen: a slow
  // machine cannot let the session recover between separate reads.
  await control(demo.info.sim_control, "POST", "/faults", { kind: "restart", down_ms: patient(1500) });
  const stale = await (await page.waitForFunction(() => {
    if (document.querySelector("#banner").className !== "stale") return null;
    return {
      banner: document.querySelector("#banner").textContent,
      freshness: document.querySelector("#positions-freshness").textContent,
      rows: document.querySelectorAll("#positions tbody tr").length,
      staleRows: document.querySelectorAll("#positions tbody tr.stale-data").length,
    };
  }, null, { timeout: patient(5000) })).jsonValue();
  assert.match(stale.banner, /^STALE since \S+/, stale.banner);
  assert.equal(stale.freshness, "STALE");
  assert.ok(stale.rows >= 6, "last known positions stay on screen");
  assert.ok(stale.staleRows >= 6, "rows are marked stale");
  if (process.env.IBGW_SCREENSHOT_STALE) await page.screenshot({ path: path.join(ROOT, process.env.IBGW_SCREENSHOT_STALE) });
  await page.waitForFunction(() => document.querySelector("#positions-freshness").textContent === "LIVE", null, { timeout: patient(15000) });
  assert.equal(await page.locator("#banner").getAttribute("class"), "");
  assert.equal(await page.locator("#epoch").textContent(), "2");
  assert.equal(await page.locator("#reconnects").textContent(), "1");
});

test("the dashboard says gateway-svc is unreachable when it is", async () => {
  // Stop gateway-svc (and its simulator): the page keeps the last data and says why it is stale.
  await stop(demo.proc);
  await page.waitForFunction(() => document.querySelector("#banner").className === "down", null, { timeout: patient(10000) });
  assert.match(await page.locator("#banner").textContent(), /gateway-svc unreachable since/);
  assert.equal(await page.locator("#gateway-link").textContent(), "unreachable");
  assert.ok(await page.locator("#positions tbody tr").count() >= 6);
  // gateway-svc comes back on the same address: the dashboard reconnects its streams by itself.
  demo = await start("gateway-svc", [
    "demo", "--grpc-listen", demo.info.grpc, "--ops-listen", "127.0.0.1:0",
    "--sim-listen", "127.0.0.1:0", "--sim-control-listen", "127.0.0.1:0",
  ]);
  await page.waitForFunction(() => document.querySelector("#positions-freshness").textContent === "LIVE", null, { timeout: patient(15000) });
  assert.equal(await page.locator("#gateway-link").textContent(), "reachable");
  assert.equal(await qty("DU1234567:272093").textContent(), "40", "fresh data from the new session");
});

// --- Dashboard security: own names only, the token, the Content-Security-Policy -------------

/** A GET with raw headers (fetch cannot set Host); resolves with { status, headers }. */
function rawGet(addr, path, headers) {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(":")), addr.slice(addr.lastIndexOf(":") + 1)];
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host, port, path, headers }, (res) => {
      res.destroy(); // the event stream never ends; the status is all we need
      resolve({ status: res.statusCode, headers: res.headers });
    });
    req.on("error", reject);
    req.end();
  });
}

test("the page renders data under a strict CSP, with no violations", async () => {
  const p = await browser.newPage();
  p.setDefaultTimeout(patient(30000));
  const messages = [];
  p.on("console", (m) => messages.push(`${m.type()}: ${m.text()}`));
  p.on("pageerror", (e) => messages.push(`pageerror: ${e.message}`));
  await p.addInitScript(() => {
    window.__violations = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  try {
    const res = await p.goto(`http://${dash.info.listen}/`);
    const csp = res.headers()["content-security-policy"];
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
    assert.equal(res.headers()["x-content-type-options"], "nosniff");
    assert.equal(res.headers()["referrer-policy"], "no-referrer");
    await support.eventually("the page to render live data", 10000, () => p.evaluate(() =>
      document.querySelectorAll("#positions tbody tr").length >= 6 &&
      document.querySelector("#positions-freshness").textContent === "LIVE" &&
      /NetLiquidation/.test(document.querySelector("#summary tbody").textContent)));
    assert.deepEqual(await p.evaluate(() => window.__violations), [], "no CSP violations");
    assert.deepEqual(messages.filter((l) => /Content Security Policy|^error|^pageerror/.test(l)), [], messages.join("\n"));
    // The check above can see a violation: an injected inline script is blocked and reported.
    const ran = await p.evaluate(() => {
      const s = document.createElement("script");
      s.textContent = "window.__inlineRan = true";
      document.body.appendChild(s);
      return window.__inlineRan === true;
    });
    assert.equal(ran, false, "inline script is blocked");
    await support.eventually("the blocked inline script to be reported", 5000, () => p.evaluate(() =>
      window.__violations.some((v) => v.startsWith("script-src"))));
  } finally {
    await p.close();
  }
});

test("a foreign Host or Origin gets 403 on the page, the event stream and the assets", async () => {
  const addr = dash.info.listen;
  const port = addr.slice(addr.lastIndexOf(":") + 1);
  for (const path of ["/", "/events", "/app.js", "/app.css", "/api/state"]) {
    const foreign = await rawGet(addr, path, { host: `evil.example:${port}` });
    assert.equal(foreign.status, 403, `${path} with a foreign Host`);
    assert.match(foreign.headers["content-security-policy"], /default-src 'self'/, "headers on refusals too");
    const origin = await rawGet(addr, path, { host: addr, origin: `http://evil.example:${port}` });
    assert.equal(origin.status, 403, `${path} with a foreign Origin`);
    for (const host of [addr, `localhost:${port}`]) {
      assert.equal((await rawGet(addr, path, { host })).status, 200, `${path} as ${host}`);
    }
  }
});

test("with a token, a browser gets in with ?token= once and stays in by cookie", async () => {
  const token = "browser-test-token-" + Math.random().toString(36).slice(2);
  const guarded = await support.start("dashboard-client", [
    "--gateway", `http://${demo.info.grpc}`, "--listen", "127.0.0.1:0", "--web-token", token,
  ]);
  const context = await browser.newContext();
  context.setDefaultTimeout(patient(30000));
  try {
    const p = await context.newPage();
    const base = `http://${guarded.info.listen}`;
    assert.equal((await p.goto(`${base}/`)).status(), 401, "no token, no page");
    assert.equal((await p.goto(`${base}/?token=not-the-token-at-all`)).status(), 401);
    const res = await p.goto(`${base}/?token=${token}`);
    assert.equal(res.status(), 200);
    assert.equal(p.url(), `${base}/`, "the token leaves the address bar");
    const cookies = await context.cookies();
    assert.ok(cookies.some((c) => c.httpOnly && c.sameSite === "Strict"), JSON.stringify(cookies.map((c) => c.name)));
    await support.eventually("the guarded page to render live data over its event stream", 10000, () => p.evaluate(() =>
      document.querySelectorAll("#positions tbody tr").length >= 6 &&
      document.querySelector("#positions-freshness").textContent === "LIVE"));
    assert.equal((await p.reload()).status(), 200, "the cookie keeps the browser in");
    assert.equal((await rawGet(guarded.info.listen, "/api/state", { host: guarded.info.listen, authorization: `Bearer ${token}` })).status, 200);
  } finally {
    await context.close();
    assert.equal(await support.stop(guarded.proc), 0);
  }
  assert.ok(!guarded.stderr().includes(token), "the token is never logged");
});
