// agent.mjs — a real `mlx-agent serve` for the client tests, and a real
// `mlx-coordinator serve` with agents behind it (startCluster).
//
// Each agent gets its own temporary data directory, models added to its
// store with `mlx-agent cache add` (stories260K from the shared test data,
// or a synthetic model written by `mlx-agent model synth`), and free
// loopback ports for HTTP and the data plane. Its output goes to a log file
// that is printed when it fails to start or a test fails, and the directory
// is removed when it stops. Agents still running when the process exits
// (a failed assertion, a signal) are killed there, so none is left behind.
// An agent can also be killed with SIGKILL and started again on the same
// data directory and addresses, as a machine that dies and comes back.
//
// The binaries come from MLX_BIN_DIR and the test models from
// MLX_TESTDATA, both set by run.mjs (which CTest starts).

import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, existsSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export const binDir = process.env.MLX_BIN_DIR ?? '';
export const testdata = process.env.MLX_TESTDATA ?? '';

// A tiny real model (260K parameters, vocabulary 512, context 2048).
export const STORIES = 'stories';

// A synthetic model slow enough that a long generation takes seconds
// (about 3 ms a token on one x86-64 core), for the tests that need one
// request to hold its slot while others arrive.
export const SLOW = 'slow';
export const SLOW_SYNTH = ['--layers', '8', '--dim', '512', '--heads', '8', '--kv-heads', '4',
  '--ff', '1536', '--type', 'q8_0', '--ctx', '4096'];

const live = new Set();

function killLive() {
  for (const a of live) {
    try {
      a.proc.kill('SIGKILL');
    } catch {
      // already gone
    }
    rmSync(a.dir, { recursive: true, force: true });
  }
  live.clear();
}
process.on('exit', killLive);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    killLive();
    process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
  });
}

export function bin(name) {
  if (binDir === '')
    throw new Error('MLX_BIN_DIR is not set; run these tests through ctest or run.mjs');
  return join(binDir, name);
}

// The environment without MLX_* settings, so a developer's own agent
// settings (MLX_PARALLEL, MLX_DATA, …) cannot change what a test starts.
function cleanEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('MLX_'))
      env[k] = v;
  return env;
}

async function runTool(args) {
  try {
    return await execFileP(bin('mlx-agent'), args, { env: cleanEnv(), timeout: 60000 });
  } catch (e) {
    throw new Error(`mlx-agent ${args.join(' ')} failed: ${e.message}\n${e.stderr ?? ''}`);
  }
}

// Text the CLI generates for prompt (greedy), an answer made without the
// HTTP server to compare the API's with.
export async function runCli(data, model, prompt, n) {
  const { stdout } = await runTool(['run', '--data', data, model, prompt, '-n', String(n),
    '--temp', '0']);
  return stdout;
}

// A TCP port on 127.0.0.1 that was free a moment ago, chosen below the
// range the kernel hands out for outgoing connections (as the C harness
// does), so the tests' own many client connections cannot take it.
async function freePort() {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 10000 + Math.floor(Math.random() * 22000);
    const ok = await new Promise((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (ok)
      return port;
  }
  throw new Error('no free port on 127.0.0.1 in 10000-31999');
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls cond (sync or async) every stepMs until it returns a truthy value,
// which is returned; throws what when deadlineMs passes first.
export async function waitFor(cond, deadlineMs, what, stepMs = 20) {
  const end = Date.now() + deadlineMs;
  let last;
  for (;;) {
    try {
      last = await cond();
      if (last)
        return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end)
      throw new Error(`${what} did not happen within ${deadlineMs} ms (last: ${last})`);
    await sleep(stepMs);
  }
}

function exited(proc) {
  return proc.exitCode !== null || proc.signalCode !== null;
}

async function healthy(base, proc) {
  if (exited(proc))
    return 'exited';
  try {
    const r = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(1000) });
    await r.arrayBuffer();
    return r.status === 200 ? 'up' : false;
  } catch {
    return false;
  }
}

class Agent {
  constructor(dir, data, args, logPath) {
    this.dir = dir;
    this.data = data;
    this.args = args; // serve flags but the addresses
    this.logPath = logPath;
    this.proc = null;
    this.base = '';
    this.listen = '';
    this.killed = false;
    this.program = 'mlx-agent';
  }

  log() {
    return existsSync(this.logPath) ? readFileSync(this.logPath, 'utf8') : '';
  }

  // The node id the agent keeps in its data directory ('' before it wrote one).
  nodeId() {
    const path = join(this.data, 'node-id');
    return existsSync(path) ? readFileSync(path, 'utf8').trim() : '';
  }

  // The request ids of the generations it ran for a coordinator (its log's
  // msg="generation" lines, written as each one ends).
  generations() {
    return new Set([...this.log().matchAll(/ msg="generation" id=(\S+)/g)].map((m) => m[1]));
  }

  // The Prometheus text of /metrics.
  async metrics() {
    const r = await fetch(`${this.base}/metrics`);
    if (r.status !== 200)
      throw new Error(`/metrics answered ${r.status}`);
    return r.text();
  }

  // Starts `mlx-agent serve` on the given ports and waits for /healthz:
  // 'up', or 'exited' when it stopped at start (its log says why).
  async spawn(http, listen) {
    this.base = `http://127.0.0.1:${http}`;
    this.listen = `tcp://127.0.0.1:${listen}`;
    const fd = openSync(this.logPath, 'a');
    this.proc = spawn(bin('mlx-agent'), ['serve', '--data', this.data,
      '--http', `127.0.0.1:${http}`, '--listen', this.listen,
      '--ollama', '', '--log-level', 'info', ...this.args],
    { env: cleanEnv(), stdio: ['ignore', fd, fd] });
    closeSync(fd);
    this.killed = false;
    live.add(this);
    try {
      return await waitFor(() => healthy(this.base, this.proc), 15000,
        'mlx-agent answering /healthz');
    } catch (e) {
      const log = this.log();
      await this.stop().catch(() => {});
      throw new Error(`${e.message}; its log:\n${log}`);
    }
  }

  // SIGKILL, as a machine that dies: no deregistration, nothing cleaned
  // up; the data directory stays for restart().
  async kill() {
    const proc = this.proc;
    const gone = new Promise((resolve) => {
      if (exited(proc))
        resolve();
      else
        proc.once('exit', () => resolve());
    });
    this.killed = true;
    proc.kill('SIGKILL');
    await gone;
  }

  // Starts a killed agent again on the same data directory (so the same
  // node id) and the same addresses.
  async restart() {
    if (!exited(this.proc))
      throw new Error('restart() is for an agent that was killed; this one still runs');
    const port = (url) => Number(/:(\d+)$/.exec(url)[1]);
    const state = await this.spawn(port(this.base), port(this.listen));
    if (state !== 'up')
      throw new Error(`mlx-agent did not start again (exit ${this.proc.exitCode}); ` +
        `its log:\n${this.log()}`);
  }

  // SIGTERM, then SIGKILL if it has not stopped within 10 s; removes the
  // data directory. Throws when the agent did not exit cleanly, since an
  // unclean stop after the tests is a failure of its own (one killed on
  // purpose and not restarted is not).
  async stop() {
    if (!live.has(this))
      return;
    const proc = this.proc;
    const gone = new Promise((resolve) => {
      if (exited(proc))
        resolve();
      else
        proc.once('exit', () => resolve());
    });
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
    await gone;
    clearTimeout(timer);
    const log = this.log();
    live.delete(this);
    rmSync(this.dir, { recursive: true, force: true });
    if (proc.exitCode !== 0 && !this.killed)
      throw new Error(`${this.program} did not stop cleanly (exit ${proc.exitCode}, ` +
        `signal ${proc.signalCode}); its log:\n${log}`);
  }
}

// The value of the first sample of metric whose labels contain every
// label="value" pair given (NaN when none matches); with sum, the sum of
// all matching samples (0 when none matches: a counter not yet counted).
export function metricValue(text, metric, labels = {}, sum = false) {
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(metric))
      continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== metric)
      continue;
    const body = m[3] ?? '';
    if (!Object.entries(labels).every(([k, v]) => body.includes(`${k}="${v}"`)))
      continue;
    if (!sum)
      return Number(m[4]);
    total += Number(m[4]);
  }
  return sum ? total : NaN;
}

// Starts an agent. opts: parallel, queue, ctx (numbers), models: a list of
// STORIES and/or SLOW (default [STORIES]), args: more serve flags.
export async function startAgent(opts = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'mlx-clients-'));
  const data = join(dir, 'data');
  try {
    for (const name of opts.models ?? [STORIES]) {
      let file;
      if (name === STORIES) {
        file = join(testdata, 'stories260K.gguf');
      } else if (name === SLOW) {
        file = join(dir, 'slow.gguf');
        await runTool(['model', 'synth', '--out', file, ...SLOW_SYNTH]);
      } else {
        throw new Error(`no recipe for a model named ${name}`);
      }
      await runTool(['cache', 'add', file, '--name', name, '--data', data]);
    }
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const flags = [];
  for (const [key, flag] of [['parallel', '--parallel'], ['queue', '--queue'], ['ctx', '--ctx']])
    if (opts[key] !== undefined)
      flags.push(flag, String(opts[key]));
  flags.push(...(opts.args ?? []));

  // A port found free can be taken before the agent binds it: try again
  // with new ports when the agent exits at start.
  const agent = new Agent(dir, data, flags, join(dir, 'agent.log'));
  for (let attempt = 1; ; attempt++) {
    if (await agent.spawn(await freePort(), await freePort()) === 'up')
      return agent;
    live.delete(agent);
    if (attempt === 3 || !/in use/.test(agent.log())) {
      const log = agent.log();
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`mlx-agent serve exited at start (exit ${agent.proc.exitCode}); ` +
        `its log:\n${log}`);
    }
  }
}

// ---- a coordinator in front of agents ----------------------------------------

class Coordinator {
  constructor(dir, proc, base, control, logPath) {
    this.dir = dir;
    this.proc = proc;
    this.base = base;
    this.control = control;
    this.logPath = logPath;
    this.program = 'mlx-coordinator';
  }

  log() {
    return existsSync(this.logPath) ? readFileSync(this.logPath, 'utf8') : '';
  }

  // As Agent.stop: SIGTERM, SIGKILL after 10 s, the directory removed;
  // throws when it did not exit cleanly.
  async stop() {
    return Agent.prototype.stop.call(this);
  }

  // The generations it relayed, by request id: the node that served (or
  // was tried last), the nodes tried and the status (its log's
  // msg="generation" lines, written as each one ends).
  generations() {
    const out = new Map();
    const re = / msg="generation" id=(\S+) .* node=(\S+) attempts=(\d+) status=(\d+)/g;
    for (const m of this.log().matchAll(re))
      out.set(m[1], { node: m[2], attempts: Number(m[3]), status: Number(m[4]) });
    return out;
  }

  // GET path of the admin API as JSON; key: an admin key, or none while
  // the coordinator has no key (loopback is admitted then).
  async admin(path, key) {
    const headers = key !== undefined ? { Authorization: `Bearer ${key}` } : {};
    const r = await fetch(`${this.base}${path}`, { headers });
    if (r.status !== 200)
      throw new Error(`GET ${path} answered ${r.status}: ${await r.text()}`);
    return r.json();
  }

  // The state /api/v1/nodes gives node id ('' when it lists no such node).
  async nodeState(id, key) {
    const { nodes } = await this.admin('/api/v1/nodes', key);
    return nodes.find((n) => n.id === id)?.state ?? '';
  }

  // The nodes /api/v1/models lists for model: [{id, state, stored, loaded, …}].
  async modelNodes(model, key) {
    const { models } = await this.admin('/api/v1/models', key);
    return models.find((m) => m.name === model)?.nodes ?? [];
  }
}

// Starts `mlx-coordinator serve` on free loopback ports with its own data
// directory; opts.args: more serve flags. Heartbeats are expected every
// 100 ms, so agents (started with the same interval) count within a second.
export async function startCoordinator(opts = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'mlx-clients-coord-'));
  const logPath = join(dir, 'coordinator.log');
  for (let attempt = 1; ; attempt++) {
    const http = await freePort();
    const control = `tcp://127.0.0.1:${await freePort()}`;
    const fd = openSync(logPath, 'a');
    const proc = spawn(bin('mlx-coordinator'), ['serve', '--data', join(dir, 'data'),
      '--control', control, '--http', `127.0.0.1:${http}`, '--heartbeat-ms', '100',
      '--log-level', 'info', ...(opts.args ?? [])],
    { env: cleanEnv(), stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const coord = new Coordinator(dir, proc, `http://127.0.0.1:${http}`, control, logPath);
    live.add(coord);
    let state;
    try {
      state = await waitFor(() => healthy(coord.base, proc), 15000,
        'mlx-coordinator answering /healthz');
    } catch (e) {
      const log = coord.log();
      await coord.stop().catch(() => {});
      throw new Error(`${e.message}; its log:\n${log}`);
    }
    if (state === 'up')
      return coord;
    live.delete(coord);
    if (attempt === 3 || !/in use/.test(coord.log())) {
      const log = coord.log();
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`mlx-coordinator serve exited at start (exit ${proc.exitCode}); ` +
        `its log:\n${log}`);
    }
  }
}

// A coordinator and n agents registered with it, each with opts.models in
// its store (as startAgent), waiting until the coordinator lists every
// model on all of them. stop() stops them all; load(model, agents) loads
// model on each of the agents (default: all) through the agent's own API
// and waits until the coordinator lists it loaded there, so the router,
// which prefers nodes with the model loaded, counts them all alike.
export async function startCluster(n = 2, opts = {}) {
  const coordinator = await startCoordinator(opts.coordinator ?? {});
  const agents = [];
  const stop = async () => {
    const errors = [];
    for (const a of agents)
      await a.stop().catch((e) => errors.push(e));
    await coordinator.stop().catch((e) => errors.push(e));
    if (errors.length > 0)
      throw errors[0];
  };
  try {
    for (let i = 0; i < n; i++)
      agents.push(await startAgent({ ...opts,
        args: ['--coordinator', coordinator.control, '--heartbeat-ms', '100',
          ...(opts.args ?? [])] }));
    for (const model of opts.models ?? [STORIES])
      await waitFor(async () => (await coordinator.modelNodes(model))
        .filter((x) => x.stored && x.state === 'up').length === n, 15000,
      `the coordinator listing ${model} on ${n} nodes`);
  } catch (e) {
    await stop().catch(() => {});
    throw new Error(`${e.message}; the coordinator's log:\n${coordinator.log()}`);
  }
  const load = async (model, which = agents) => {
    for (const a of which) {
      const r = await fetch(`${a.base}/api/generate`, { method: 'POST',
        body: JSON.stringify({ model }) });
      if (r.status !== 200)
        throw new Error(`loading ${model} on ${a.base} answered ${r.status}: ${await r.text()}`);
    }
    const ids = which.map((a) => a.nodeId());
    await waitFor(async () => {
      const loaded = (await coordinator.modelNodes(model)).filter((x) => x.loaded);
      return ids.every((id) => loaded.some((x) => x.id === id));
    }, 15000, `the coordinator listing ${model} loaded on ${ids.join(', ')}`);
  };
  return { coordinator, agents, stop, load };
}
