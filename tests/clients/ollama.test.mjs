// ollama.test.mjs — the agent's Ollama API as the official `ollama` package
// uses it: generate and chat, streamed and whole, the final object's
// counts and durations, stop strings and seeds in options, list, show and
// ps (with keep_alive 0 unloading), and errors as the library's
// ResponseError with the HTTP status.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { Ollama } from 'ollama';

import { STORIES, startAgent, waitFor } from './lib/agent.mjs';

let agent, ollama;
const N = 24;

before(async () => {
  agent = await startAgent();
  ollama = new Ollama({ host: agent.base });
});

after(async () => {
  await agent?.stop();
});

const greedy = { temperature: 0, num_predict: N };

async function collect(stream, pick) {
  const parts = [];
  for await (const part of stream)
    parts.push(part);
  return { parts, text: parts.map(pick).join('') };
}

function assertFinal(last, text) {
  assert.equal(last.done, true);
  assert.ok(['stop', 'length'].includes(last.done_reason), last.done_reason);
  assert.ok(last.eval_count > 0 && last.eval_count <= N, `eval_count ${last.eval_count}`);
  // num_predict reached: exactly that many tokens were generated.
  if (last.done_reason === 'length')
    assert.equal(last.eval_count, N);
  assert.ok(last.prompt_eval_count > 0, 'the prompt was evaluated');
  for (const d of ['total_duration', 'prompt_eval_duration', 'eval_duration'])
    assert.ok(Number.isInteger(last[d]) && last[d] > 0, `${d} is ${last[d]}`);
  assert.ok(last.load_duration >= 0);
  assert.ok(last.total_duration >= last.eval_duration + last.prompt_eval_duration,
    'the total holds the prompt and the generation');
  assert.ok(text.length > 0, 'something was generated');
}

// A stop string from the middle of text, and the text before it.
function stopFrom(text) {
  const at = Math.floor(text.length / 3);
  const stop = text.slice(at, at + 5);
  const cut = text.indexOf(stop);
  assert.ok(stop.length === 5 && cut > 0, `no stop string to take from ${JSON.stringify(text)}`);
  return { stop, before: text.slice(0, cut) };
}

describe('ollama generate', () => {
  test('whole and streamed: the same text, and a final object with counts and durations',
    async () => {
      const req = { model: STORIES, prompt: 'Once upon a time', options: greedy };
      const whole = await ollama.generate({ ...req, stream: false });
      assert.equal(whole.model, STORIES);
      assertFinal(whole, whole.response);

      const { parts, text } = await collect(await ollama.generate({ ...req, stream: true }),
        (p) => p.response);
      assert.equal(text, whole.response);
      const last = parts[parts.length - 1];
      for (const p of parts.slice(0, -1))
        assert.equal(p.done, false);
      assertFinal(last, text);
      assert.equal(last.eval_count, whole.eval_count);
      assert.equal(last.done_reason, whole.done_reason);
      assert.ok(!Number.isNaN(Date.parse(last.created_at)), last.created_at);
    });

  test('raw generate is the OpenAI completion of the same prompt, token for token',
    async () => {
      const prompt = 'The little dog';
      const g = await ollama.generate({ model: STORIES, prompt, raw: true, stream: false,
        options: { ...greedy, repeat_penalty: 1 } });
      const openai = new OpenAI({ baseURL: `${agent.base}/v1`, apiKey: 'unused', maxRetries: 0 });
      const c = await openai.completions.create({ model: STORIES, prompt, max_tokens: N,
        temperature: 0 });
      assert.equal(g.response, c.choices[0].text);
      assert.equal(g.eval_count, c.usage.completion_tokens);
      assert.equal(g.prompt_eval_count, c.usage.prompt_tokens);
    });

  test('a stop string in options ends the text just before it', async () => {
    const req = { model: STORIES, prompt: 'The cat and the dog', stream: false,
      options: { ...greedy, num_predict: 48 } };
    const full = (await ollama.generate(req)).response;
    const { stop, before } = stopFrom(full);
    const cut = await ollama.generate({ ...req, options: { ...req.options, stop: [stop] } });
    assert.equal(cut.response, before);
    assert.equal(cut.done_reason, 'stop');
    const { text } = await collect(await ollama.generate({ ...req, stream: true,
      options: { ...req.options, stop: [stop] } }), (p) => p.response);
    assert.equal(text, before);
  });

  test('options.seed makes a sampled answer repeatable; different seeds differ', async () => {
    const text = async (seed) => (await ollama.generate({ model: STORIES, prompt: 'One day',
      stream: false, options: { temperature: 1, num_predict: N, seed } })).response;
    const first = await text(42);
    assert.equal(await text(42), first, 'the same seed gave another answer');
    const all = new Set([first]);
    for (const seed of [1, 2, 3, 4, 5])
      all.add(await text(seed));
    assert.ok(all.size > 1, `six seeds all gave ${JSON.stringify(first)}`);
  });
});

describe('ollama chat', () => {
  test('whole and streamed: the same assistant message', async () => {
    const req = { model: STORIES, messages: [{ role: 'user', content: 'Tell me a story.' }],
      options: greedy };
    const whole = await ollama.chat({ ...req, stream: false });
    assert.equal(whole.message.role, 'assistant');
    assertFinal(whole, whole.message.content);

    const { parts, text } = await collect(await ollama.chat({ ...req, stream: true }),
      (p) => p.message.content);
    assert.equal(text, whole.message.content);
    for (const p of parts)
      assert.equal(p.message.role, 'assistant');
    assertFinal(parts[parts.length - 1], text);
  });
});

describe('ollama models', () => {
  test('list shows the model with its details', async () => {
    const { models } = await ollama.list();
    const m = models.find((x) => x.name === STORIES || x.name === `${STORIES}:latest`);
    assert.ok(m, `list gave ${JSON.stringify(models.map((x) => x.name))}`);
    assert.match(m.digest, /^[0-9a-f]{64}$/);
    assert.ok(m.size > 1000000, `size ${m.size}`);
    assert.equal(m.details.format, 'gguf');
    assert.equal(m.details.family, 'llama');
    assert.equal(m.details.quantization_level, 'F32');
    assert.ok(m.details.parameter_size.length > 0);
    assert.ok(m.modified_at instanceof Date || !Number.isNaN(Date.parse(m.modified_at)));
  });

  test('show returns details and model_info', async () => {
    const s = await ollama.show({ model: STORIES });
    assert.equal(s.details.family, 'llama');
    assert.equal(s.details.format, 'gguf');
    assert.equal(s.model_info['general.architecture'], 'llama');
    assert.equal(s.model_info['llama.context_length'], 2048);
    assert.equal(s.model_info['llama.vocab_size'], 512);
  });

  test('ps shows a loaded model; keep_alive 0 unloads it', async () => {
    const loaded = async () => (await ollama.ps()).models.map((m) => m.name);
    const gone = (what) => waitFor(async () => (await loaded()).length === 0, 10000, what);

    // A load-only request (no prompt) loads it and keeps it.
    const load = await ollama.generate({ model: STORIES, prompt: '', stream: false });
    assert.equal(load.done_reason, 'load');
    let models = (await ollama.ps()).models;
    assert.deepEqual(models.map((m) => m.name), [STORIES]);
    assert.equal(models[0].details.family, 'llama');
    assert.ok(models[0].size > 0);
    assert.ok(Date.parse(models[0].expires_at) > Date.now(), 'it expires in the future');

    // A generation with keep_alive 0 unloads it once done.
    const g = await ollama.generate({ model: STORIES, prompt: 'Hi', stream: false,
      keep_alive: 0, options: { num_predict: 4 } });
    assert.equal(g.done, true);
    await gone('the model unloading after a generation with keep_alive 0');

    // So does a load-only request with keep_alive 0.
    await ollama.generate({ model: STORIES, prompt: '', stream: false });
    assert.deepEqual(await loaded(), [STORIES]);
    const unload = await ollama.generate({ model: STORIES, prompt: '', stream: false,
      keep_alive: 0 });
    assert.equal(unload.done_reason, 'unload');
    await gone('the model unloading after a load-only request with keep_alive 0');
  });
});

describe('ollama errors', () => {
  async function failure(make) {
    try {
      const r = await make();
      // A stream's error may come with its first part.
      if (r && typeof r[Symbol.asyncIterator] === 'function')
        for await (const _ of r);
    } catch (e) {
      return e;
    }
    assert.fail('the request succeeded');
  }

  test('an unknown model is a ResponseError with status 404', async () => {
    for (const stream of [false, true]) {
      const e = await failure(() => ollama.generate({ model: 'no-such-model', prompt: 'Hi',
        stream }));
      assert.equal(e.name, 'ResponseError', `${stream}: got ${e}`);
      assert.equal(e.status_code, 404);
      assert.match(e.error, /no-such-model/);
    }
    const e = await failure(() => ollama.show({ model: 'no-such-model' }));
    assert.equal(e.name, 'ResponseError');
    assert.equal(e.status_code, 404);
  });

  test('a bad option is a ResponseError with status 400 naming it', async () => {
    for (const stream of [false, true]) {
      const e = await failure(() => ollama.chat({ model: STORIES, stream,
        messages: [{ role: 'user', content: 'Hi' }], options: { temperature: 'hot' } }));
      assert.equal(e.name, 'ResponseError', `${stream}: got ${e}`);
      assert.equal(e.status_code, 400);
      assert.match(e.error, /temperature/);
    }
  });
});
