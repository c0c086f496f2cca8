// overflow.test.mjs — a full queue answers 503 with Retry-After.
//
// The agent has one slot and room for one waiting request (--parallel 1
// --queue 1). With one long stream generating and a second waiting for
// its slot, a third request is refused at once: 503, code "overloaded",
// Retry-After: 1, as each library reports it (openai's
// InternalServerError, ollama's ResponseError) and as a plain fetch sees
// it. Once the two long requests are given up, the agent serves again.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { Ollama } from 'ollama';

import { SLOW, metricValue, startAgent, waitFor } from './lib/agent.mjs';

const LONG = 3000;
let agent, openai, ollama;

before(async () => {
  agent = await startAgent({ parallel: 1, queue: 1, models: [SLOW] });
  openai = new OpenAI({ baseURL: `${agent.base}/v1`, apiKey: 'unused', maxRetries: 0,
    timeout: 60000 });
  ollama = new Ollama({ host: agent.base });
});

after(async () => {
  await agent?.stop();
});

const short = { model: SLOW, prompt: 'Hello', max_tokens: 4, temperature: 0 };

async function gauges() {
  const text = await agent.metrics();
  return { running: metricValue(text, 'mlx_requests_processing'),
    waiting: metricValue(text, 'mlx_requests_deferred') };
}

test('past the queue a request gets 503 and Retry-After; then the agent serves again',
  async () => {
    const long = { model: SLOW, prompt: 'Once upon a time', max_tokens: LONG, temperature: 0,
      stream: true };
    // The first takes the slot: its first chunk has come.
    const first = new AbortController();
    const stream = await openai.completions.create(long, { signal: first.signal });
    const it = stream[Symbol.asyncIterator]();
    const chunk = await it.next();
    assert.equal(chunk.done, false);
    assert.equal(chunk.value.choices[0].finish_reason, null);

    // The second waits: its answer starts only when it has the slot.
    const second = new AbortController();
    const waiting = openai.completions.create(long, { signal: second.signal })
      .then(() => 'started', (e) => e);
    await waitFor(async () => {
      const g = await gauges();
      return g.running === 1 && g.waiting === 1;
    }, 10000, 'one request generating and one waiting');

    // The third finds the queue full.
    let e = null;
    try {
      await openai.completions.create(short).withResponse();
    } catch (err) {
      e = err;
    }
    assert.ok(e instanceof OpenAI.InternalServerError, `got ${e}`);
    assert.equal(e.status, 503);
    assert.equal(e.code, 'overloaded');
    assert.equal(e.headers.get('retry-after'), '1');

    const raw = await fetch(`${agent.base}/v1/chat/completions`, { method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: SLOW, messages: [{ role: 'user', content: 'Hi' }],
        stream: true }) });
    assert.equal(raw.status, 503);
    assert.equal(raw.headers.get('retry-after'), '1');
    assert.equal((await raw.json()).error.code, 'overloaded');

    e = null;
    try {
      await ollama.generate({ model: SLOW, prompt: 'Hi', stream: false });
    } catch (err) {
      e = err;
    }
    assert.equal(e?.name, 'ResponseError', `got ${e}`);
    assert.equal(e.status_code, 503);

    // Both long ones given up: the waiting one first, then the running one.
    second.abort();
    const outcome = await waiting;
    assert.ok(outcome instanceof OpenAI.APIUserAbortError, `the waiting request: ${outcome}`);
    first.abort();
    await it.return?.();
    await waitFor(async () => {
      const g = await gauges();
      return g.running === 0 && g.waiting === 0;
    }, 10000, 'nothing generating or waiting after both were given up');

    const r = await openai.completions.create(short, { timeout: 3000 });
    assert.equal(r.usage.completion_tokens, 4);
    const text = await agent.metrics();
    assert.ok(metricValue(text, 'mlx_requests_total', { status: '503' }, true) >= 3,
      'the refusals are counted');
    assert.ok(metricValue(text, 'mlx_requests_total', { status: '499' }, true) >= 2,
      'both given-up requests are counted as 499');
  });
