// Shared helpers for the browser and CLI tests: start the project's binaries on ephemeral
// loopback ports, read their address line, poll with deadlines, stop them cleanly.
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const BIN = (name) => path.join(ROOT, "target", "debug", name);
const PATIENCE = Number(process.env.IBGW_TEST_PATIENCE || "1");

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
  const timer = new Promise((_, reject) => setTimeout(() => reject(new Error(`${name} printed nothing in ${timeoutMs} ms:\n${stderr}`)), timeoutMs * PATIENCE));
  const line = await Promise.race([first, timer]);
  return { proc, info: JSON.parse(line), stderr: () => stderr };
}

/** SIGTERM, then wait for exit; resolves with the exit code. */
export async function stop(proc, timeoutMs = 10000) {
  if (proc.exitCode !== null) return proc.exitCode;
  proc.kill("SIGTERM");
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs * PATIENCE);
  const [code] = await once(proc, "exit");
  clearTimeout(timer);
  return code;
}

/** Polls `check` every 20 ms until it returns a truthy value, or throws `what` at the deadline. */
export async function eventually(what, timeoutMs, check) {
  const deadline = Date.now() + timeoutMs * PATIENCE;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
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
  return spawnSync(cmd, args, { cwd: ROOT, encoding: "utf8", timeout: 60000 * PATIENCE, ...opts });
}

/** The demo: gateway-svc with the embedded simulator, everything on ephemeral ports. */
export async function startDemo() {
  return start("gateway-svc", [
    "demo",
    "--grpc-listen", "127.0.0.1:0",
    "--ops-listen", "127.0.0.1:0",
    "--sim-listen", "127.0.0.1:0",
    "--sim-control-listen", "127.0.0.1:0",
  ]);
}
