// disconnect.test.mjs — a client that goes away mid-stream frees its slot.
//
// The agent has one slot (--parallel 1). A long stream (3000 tokens of the
// slow synthetic model: about ten seconds here) is abandoned after its
// first chunk; a short request for the same model must then be served
// within a few seconds, which it could not be if the abandoned generation
// still held the slot. /metrics must count the abandoned request as 499
// and show nothing generating afterwards. Both libraries' ways of giving
// up are tried: an AbortController's signal (openai) and a stream's
// abort() (ollama).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { Ollama } from 'ollama';

import { SLOW, metricValue, startAgent, waitFor } from './lib/agent.mjs';

const LONG = 3000;
// Well below the time LONG tokens take, far above what 4 take.
const DEADLINE_MS = 3000;
// Chunks an aborted stream may still yield: those parsed from the network
// read that held the first one, never the rest of LONG.
const FEW = 16;
let agent, openai, ollama;

before(async () => {
  agent = await startAgent({ parallel: 1, models: [SLOW] });
  openai = new OpenAI({ baseURL: `${agent.base}/v1`, apiKey: 'unused', maxRetries: 0,
    timeout: 60000 });
  ollama = new Ollama({ host: agent.base });
  // Loaded before the clock matters.
  await ollama.generate({ model: SLOW, prompt: '', stream: false });
});

after(async () => {
  await agent?.stop();
});

// A short request for the same model, which needs the only slot: it must
// be answered within DEADLINE_MS.
async function shortRequestIsServed() {
  const t0 = Date.now();
  const r = await openai.completions.create({ model: SLOW, prompt: 'Hello', max_tokens: 4,
    temperature: 0 }, { timeout: DEADLINE_MS });
  assert.equal(r.usage.completion_tokens, 4);
  return Date.now() - t0;
}

async function abandoned() {
  return metricValue(await agent.metrics(), 'mlx_requests_total', { status: '499' }, true);
}

async function settled(count) {
  await waitFor(async () => {
    const text = await agent.metrics();
    return metricValue(text, 'mlx_requests_total', { status: '499' }, true) >= count &&
      metricValue(text, 'mlx_requests_processing') === 0 &&
      metricValue(text, 'mlx_requests_deferred') === 0;
  }, 10000, `/metrics counting ${count} abandoned request(s) and nothing generating`);
}

test('an aborted openai stream frees the slot and is counted as 499', async () => {
  const ac = new AbortController();
  const stream = await openai.completions.create({ model: SLOW, prompt: 'Once upon a time',
    max_tokens: LONG, temperature: 0, stream: true }, { signal: ac.signal });
  let chunks = 0, error = null;
  try {
    for await (const c of stream) {
      chunks++;
      assert.equal(c.choices[0].finish_reason, null, 'the long stream ended early');
      ac.abort();
    }
  } catch (e) {
    error = e;
  }
  // The library ends an aborted stream's iteration quietly, or with its
  // abort error; either way nothing came past what had already arrived
  // with the first chunk (a network read may carry a few).
  assert.ok(chunks >= 1 && chunks < FEW, `${chunks} chunks after the abort`);
  assert.ok(error === null || error instanceof OpenAI.APIUserAbortError, `${error}`);

  const ms = await shortRequestIsServed();
  assert.ok(ms < DEADLINE_MS, `${ms} ms`);
  await settled(1);
  assert.match(await agent.metrics(),
    /mlx_requests_total\{[^}]*endpoint="\/v1\/completions"[^}]*model="slow"[^}]*status="499"\} 1\n/);
});

test('an aborted ollama stream frees the slot and is counted as 499', async () => {
  const before = await abandoned();
  const stream = await ollama.generate({ model: SLOW, prompt: 'Once upon a time',
    stream: true, options: { temperature: 0, num_predict: LONG } });
  let parts = 0, error = null;
  try {
    for await (const part of stream) {
      parts++;
      assert.equal(part.done, false, 'the long stream ended early');
      stream.abort();
    }
  } catch (e) {
    error = e;
  }
  assert.ok(parts >= 1 && parts < FEW, `${parts} parts after the abort`);
  assert.equal(error?.name, 'AbortError', `the stream ended with ${error}`);

  const ms = await shortRequestIsServed();
  assert.ok(ms < DEADLINE_MS, `${ms} ms`);
  await settled(before + 1);
});
