// The thin clients against `ibgw-demo`: grpcurl-style operation through reflection with
// `buf curl`, and the seed's success bar (ten runner passes, one upstream socket, no CLOSE_WAIT).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { BIN, ROOT, control, eventually, run, start, startDemo, stop } from "./support.mjs";

const BUF = path.join(ROOT, "tests", "browser", "node_modules", ".bin", "buf");
let demo;

before(async () => {
  demo = await startDemo();
  await eventually("the service to be ready", 10000, async () => run(BIN("gateway-svc"), ["health", "--addr", `http://${demo.info.grpc}`]).status === 0);
});

after(async () => {
  if (demo) assert.equal(await stop(demo.proc), 0);
});

function buf(...args) {
  const r = run(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args]);
  assert.equal(r.status, 0, `buf curl ${args.join(" ")} failed:\n${r.stderr}`);
  return r.stdout;
}

test("buf curl lists, describes and calls the service through reflection", () => {
  const base = `http://${demo.info.grpc}`;
  const services = buf("--list-services", base);
  for (const s of ["gateway.v1.GatewayService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"]) {
    assert.match(services, new RegExp(s.replaceAll(".", "\\.")), services);
  }
  const methods = buf("--list-methods", base);
  assert.match(methods, /gateway\.v1\.GatewayService\/WatchPositions/);
  const accounts = JSON.parse(buf("-d", "{}", `${base}/gateway.v1.GatewayService/ListAccounts`));
  assert.deepEqual(accounts.accounts.map((a) => a.id), ["DU1234567", "DU7654321"]);
  assert.equal(accounts.freshness.state, "FRESHNESS_STATE_LIVE");
  const positions = JSON.parse(buf("-d", '{"symbols":["AAPL"]}', `${base}/gateway.v1.GatewayService/GetPositions`));
  assert.ok(positions.positions.every((p) => p.symbol === "AAPL") && positions.positions.length === 3);
  const summary = JSON.parse(buf("-d", '{"tags":["NetLiquidation"]}', `${base}/gateway.v1.GatewayService/GetAccountSummary`));
  assert.equal(summary.values.length, 2);
  const health = JSON.parse(buf("-d", "{}", `${base}/gateway.v1.GatewayService/GetHealth`));
  assert.equal(health.health.state, "SESSION_STATE_READY");
  const grpcHealth = JSON.parse(buf("-d", '{"service":"gateway.v1.GatewayService"}', `${base}/grpc.health.v1.Health/Check`));
  assert.equal(grpcHealth.status, "SERVING");
  const notFound = run(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "-d", '{"accounts":["NOPE"]}', `${base}/gateway.v1.GatewayService/GetPositions`]);
  assert.notEqual(notFound.status, 0);
  assert.match(notFound.stdout + notFound.stderr, /not_found/i);
});

test("grpcurl 1.8 (reflection v1alpha only) lists and describes the service", () => {
  const grpcurl = path.join(ROOT, ".venv", "bin", "grpcurl");
  const list = run(grpcurl, ["-plaintext", demo.info.grpc, "list"]);
  assert.equal(list.status, 0, list.stderr);
  assert.match(list.stdout, /gateway\.v1\.GatewayService/);
  const describe = run(grpcurl, ["-plaintext", demo.info.grpc, "describe", "gateway.v1.GatewayService.GetPositions"]);
  assert.equal(describe.status, 0, describe.stderr);
  assert.match(describe.stdout, /Current positions, optionally filtered/, "proto comments survive into reflection");
  const call = run(grpcurl, ["-plaintext", "-d", '{"accounts":["DU7654321"]}', demo.info.grpc, "gateway.v1.GatewayService/GetPositions"]);
  assert.equal(call.status, 0, call.stderr);
  assert.match(call.stdout, /"account": "DU7654321"/);
});

test("buf curl reads a server stream", async () => {
  // A watch never ends by itself: read the first message, then stop the client.
  const { spawn } = await import("node:child_process");
  const child = spawn(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "-d", "{}", `http://${demo.info.grpc}/gateway.v1.GatewayService/WatchPositions`]);
  let out = "";
  child.stdout.on("data", (b) => { out += b; });
  await eventually("the first streamed message", 10000, () => out.includes("UPDATE_KIND_SNAPSHOT"));
  child.kill("SIGTERM");
  assert.match(out, /"symbol": "AAPL"/);
});

test("the runner passes ten times in a row on one upstream socket while a dashboard streams", async () => {
  const dash = await start("dashboard-client", ["--gateway", `http://${demo.info.grpc}`, "--listen", "127.0.0.1:0"]);
  try {
    await eventually("the dashboard to stream positions", 10000, async () => {
      const s = await (await fetch(`http://${dash.info.listen}/api/state`)).json();
      return s.positions.items.length >= 6 && s.positions.freshness.state === "LIVE";
    });
    for (let i = 1; i <= 10; i++) {
      const r = run(BIN("trader-client"), ["--symbols", "AAPL", "--once", "--gateway", `http://${demo.info.grpc}`]);
      assert.equal(r.status, 0, `run ${i}: ${r.stderr}`);
      assert.match(r.stdout, /AAPL\s+STK\s+qty\s+100/);
    }
    const stats = await control(demo.info.sim_control, "GET", "/stats");
    assert.equal(stats.connections_accepted_total, 1, "one upstream connection in total");
    assert.equal(stats.open_now, 1);
    assert.equal(stats.order_messages, 0);
    const port = demo.info.sim_api.split(":")[1];
    const ss = run("ss", ["-Htan", "state", "close-wait", `( sport = :${port} or dport = :${port} )`]);
    assert.equal(ss.status, 0, ss.stderr);
    assert.equal(ss.stdout.trim(), "", `no half-closed sockets:\n${ss.stdout}`);
  } finally {
    assert.equal(await stop(dash.proc), 0);
  }
});

test("the API only grows: buf breaking against the released gateway.v1", () => {
  const proto = path.join(ROOT, "proto");
  const r = run(BUF, ["breaking", proto, "--against", path.join(proto, "released.binpb")]);
  assert.equal(r.status, 0, `buf breaking found a change to a released field or RPC:\n${r.stdout}${r.stderr}`);
});
