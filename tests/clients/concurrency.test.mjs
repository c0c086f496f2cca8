// concurrency.test.mjs — 64 streams at once through both client libraries
// (--parallel 8, so 8 are decoded together and the rest wait in the
// queue): every one completes, and its text is exactly what the same
// request gives when it runs alone. Greedy decoding is deterministic, so
// any difference means one sequence's state leaked into another's.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { Ollama } from 'ollama';

import { STORIES, metricValue, startAgent } from './lib/agent.mjs';

const N = 64;
const MAX_TOKENS = 24;
let agent, openai, ollama;

before(async () => {
  agent = await startAgent({ parallel: 8, queue: 64 });
  openai = new OpenAI({ baseURL: `${agent.base}/v1`, apiKey: 'unused', maxRetries: 0,
    timeout: 60000 });
  ollama = new Ollama({ host: agent.base });
});

after(async () => {
  await agent?.stop();
});

const names = ['Lily', 'Tom', 'Sue', 'Max', 'Ben', 'Mia', 'Sam', 'Tim'];
const things = ['a red ball', 'a big dog', 'a little cat', 'a tree', 'a boat', 'a cake',
  'the sun', 'a bird'];
// 64 different prompts: half go through each library.
const prompts = Array.from({ length: N }, (_, i) =>
  `${names[i % 8]} saw ${things[Math.floor(i / 8)]} and`);

// Request i as a stream; resolves to its text and how it ended.
async function streamOne(i) {
  if (i % 2 === 0) {
    const stream = await openai.completions.create({ model: STORIES, prompt: prompts[i],
      max_tokens: MAX_TOKENS, temperature: 0, stream: true });
    let text = '', finish = null;
    for await (const c of stream) {
      text += c.choices[0]?.text ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    return { text, finish };
  }
  // raw: the prompt as it is, as the completion endpoint takes it; the
  // repeat penalty off, which Ollama's defaults turn on.
  const stream = await ollama.generate({ model: STORIES, prompt: prompts[i], raw: true,
    stream: true, options: { temperature: 0, num_predict: MAX_TOKENS, repeat_penalty: 1 } });
  let text = '', finish = null;
  for await (const part of stream) {
    text += part.response;
    if (part.done)
      finish = part.done_reason;
  }
  return { text, finish };
}

test('64 concurrent streams each give what the same request gives alone', async () => {
  const alone = [];
  for (let i = 0; i < N; i++)
    alone.push(await streamOne(i));
  for (const [i, r] of alone.entries()) {
    assert.ok(r.text.length > 0, `request ${i} alone generated nothing`);
    assert.ok(['stop', 'length'].includes(r.finish), `request ${i} alone ended ${r.finish}`);
  }
  // Different prompts, different stories: were they all alike, a mix-up
  // between sequences could not show.
  const distinct = new Set(alone.map((r) => r.text)).size;
  assert.ok(distinct >= N / 2, `only ${distinct} different texts from ${N} prompts`);

  // While they run, /metrics must never show more generating at once than
  // there are slots. (How many it shows depends on when it is asked, so
  // only the bound is checked.)
  let peak = 0, running = true;
  const sampler = (async () => {
    while (running)
      peak = Math.max(peak, metricValue(await agent.metrics(), 'mlx_requests_processing'));
  })();
  let together;
  try {
    together = await Promise.all(alone.map((_, i) => streamOne(i)));
  } finally {
    running = false;
    await sampler;
  }
  assert.ok(peak <= 8, `${peak} requests were generated at once with --parallel 8`);
  const wrong = [];
  for (let i = 0; i < N; i++)
    if (together[i].text !== alone[i].text || together[i].finish !== alone[i].finish)
      wrong.push(`#${i} ${JSON.stringify(prompts[i])}: alone ${JSON.stringify(alone[i])}, ` +
        `together ${JSON.stringify(together[i])}`);
  assert.deepEqual(wrong, [], `${wrong.length} of ${N} answers changed among others`);

  const text = await agent.metrics();
  assert.doesNotMatch(text, /mlx_requests_total\{[^}]*status="5\d\d"/, 'no request was refused');
});
