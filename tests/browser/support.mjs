// Shared helpers for the browser and CLI tests: start the project's binaries on ephemeral
// loopback ports, read their address line, poll with deadlines, stop them cleanly.
//
// Tests only ever wait for a condition, up to a deadline; they never assert how fast something
// happened. Every deadline is multiplied by IBGW_TEST_PATIENCE (a whole number, default 3, the
// same default scripts/test exports), so a loaded machine gets more time; a passing test does not
// take longer.
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const BIN = (name) => path.join(ROOT, "target", "debug", name);
export const PATIENCE = Number(process.env.IBGW_TEST_PATIENCE || "3");
if (!Number.isInteger(PATIENCE) || PATIENCE < 1) {
  throw new Error(`IBGW_TEST_PATIENCE must be a whole number >= 1, not ${JSON.stringify(process.env.IBGW_TEST_PATIENCE)}`);
}

/** A deadline of `ms` milliseconds, scaled by IBGW_TEST_PATIENCE. */
export const patient = (ms) => ms * PATIENCE;

/** Starts a binary and resolves with { proc, info } once its first stdout line (JSON) arrives. */
export async function start(name, args, { timeoutMs = 20000 } = {}) {
  const proc = spawn(BIN(name), args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "warn" } });
  let stderr = "";
  proc.stderr.on("data", (b) => { stderr = (stderr + b.toString()).slice(-20000); });
  const lines = createInterface({ input: proc.stdout });
  const first = new Promise((resolve, reject) => {
    lines.once("line", (l) => resolve(l));
    proc.once("exit", (code) => reject(new Error(`${name} exited with ${code} before printing its address:\n${stderr}`)));
  });
  let timeout;
  const timer = new Promise((_, reject) => {
    timeout = setTimeout(() => reject(new Error(`${name} printed nothing in ${patient(timeoutMs)} ms:\n${stderr}`)), patient(timeoutMs));
  });
  try {
    const line = await Promise.race([first, timer]);
    return { proc, info: JSON.parse(line), stderr: () => stderr };
  } finally {
    clearTimeout(timeout); // a pending timer would keep the test process alive
  }
}

/** SIGTERM, then wait for exit; resolves with the exit code. */
export async function stop(proc, timeoutMs = 10000) {
  if (proc.exitCode !== null) return proc.exitCode;
  proc.kill("SIGTERM");
  const timer = setTimeout(() => proc.kill("SIGKILL"), patient(timeoutMs));
  const [code] = await once(proc, "exit");
  clearTimeout(timer);
  return code;
}

/** Polls `check` every 20 ms until it returns a truthy value, or throws `what` at the deadline
 * (`timeoutMs` scaled by IBGW_TEST_PATIENCE). */
export async function eventually(what, timeoutMs, check) {
  const deadline = Date.now() + patient(timeoutMs);
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${patient(timeoutMs)} ms waiting for ${what}${last ? `: ${last.message}` : ""}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** JSON over HTTP to a simulator control port. */
export async function control(addr, method, p, body) {
  const res = await fetch(`http://${addr}${p}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Runs a command to completion. */
export function run(cmd, args, opts = {}) {
  return spawnSync(cmd, args, { cwd: ROOT, encoding: "utf8", timeout: patient(60000), ...opts });
}

/** The demo (ibgw-demo): gateway-svc with the embedded simulator, everything on ephemeral ports. */
export async function startDemo() {
  return start("ibgw-demo", [
    "--grpc-listen", "127.0.0.1:0",
    "--ops-listen", "127.0.0.1:0",
    "--tws-api-listen", "127.0.0.1:0",
    "--sim-listen", "127.0.0.1:0",
    "--sim-control-listen", "127.0.0.1:0",
  ]);
}
