// coordinator.test.mjs — the coordinator's OpenAI and Ollama API as the
// official `openai` and `ollama` packages use it, with three agents behind
// it: greedy answers, whole and streamed, chat and completion, equal what
// an agent gives directly, log probabilities too; the model list names the
// fleet's model; and an error arrives as each library's own error type.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { Ollama } from 'ollama';

import { STORIES, startCluster } from './lib/agent.mjs';

let cluster, viaOpenAI, atOpenAI, viaOllama, atOllama;
const N = 32;

// Retries would hide the status of a failed first try.
const openaiAt = (base) => new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused',
  maxRetries: 0, timeout: 30000 });

before(async () => {
  cluster = await startCluster(3);
  viaOpenAI = openaiAt(cluster.coordinator.base);
  atOpenAI = openaiAt(cluster.agents[0].base);
  viaOllama = new Ollama({ host: cluster.coordinator.base });
  atOllama = new Ollama({ host: cluster.agents[2].base });
});

after(async () => {
  await cluster?.stop();
});

const chat = (content) => ({
  model: STORIES,
  messages: [{ role: 'user', content }],
  max_tokens: N,
  temperature: 0,
});

const completion = (prompt) => ({ model: STORIES, prompt, max_tokens: N, temperature: 0 });

async function collect(stream, pick) {
  let text = '';
  for await (const part of stream)
    text += pick(part) ?? '';
  return text;
}

describe('openai through the coordinator', () => {
  test('chat, whole and streamed, equals the agent\'s answer', async () => {
    const req = chat('Tell me a story about a dog.');
    const at = await atOpenAI.chat.completions.create(req);
    const via = await viaOpenAI.chat.completions.create(req);
    assert.equal(via.object, 'chat.completion');
    assert.equal(via.model, STORIES);
    assert.ok(at.choices[0].message.content.length > 0, 'the agent answered something');
    assert.equal(via.choices[0].message.content, at.choices[0].message.content);
    assert.equal(via.choices[0].finish_reason, at.choices[0].finish_reason);
    assert.deepEqual(via.usage, at.usage);

    const stream = await viaOpenAI.chat.completions.create({ ...req, stream: true });
    const text = await collect(stream, (c) => c.choices[0]?.delta?.content);
    assert.equal(text, at.choices[0].message.content);
  });

  test('completions, whole and streamed, equal the agent\'s answer', async () => {
    const req = completion('Once upon a time');
    const at = await atOpenAI.completions.create(req);
    const via = await viaOpenAI.completions.create(req);
    assert.equal(via.choices[0].text, at.choices[0].text);
    assert.deepEqual(via.usage, at.usage);

    const stream = await viaOpenAI.completions.create({ ...req, stream: true });
    const text = await collect(stream, (c) => c.choices[0]?.text);
    assert.equal(text, at.choices[0].text);
  });

  test('logprobs, whole and streamed, equal the agent\'s', async () => {
    const req = { ...chat('Tell me a story about a bird.'), logprobs: true, top_logprobs: 3 };
    const at = (await atOpenAI.chat.completions.create(req)).choices[0].logprobs.content;
    assert.ok(at.length > 0, 'the agent gave log probabilities');
    // Values may differ in their last digits between nodes: where a node
    // reuses a cached prefix, the prompt's last token is computed alone
    // rather than in the prefill, and the rounding carries on.
    const same = (got, what) => {
      assert.equal(got.length, at.length, `${what}: one entry per token`);
      got.forEach((e, i) => {
        assert.equal(e.token, at[i].token, `${what}: token ${i}`);
        assert.ok(Math.abs(e.logprob - at[i].logprob) <= 1e-3, `${what}: logprob ${i}`);
        assert.deepEqual(e.top_logprobs.map((t) => t.token),
          at[i].top_logprobs.map((t) => t.token), `${what}: alternatives ${i}`);
      });
    };
    const via = await viaOpenAI.chat.completions.create(req);
    same(via.choices[0].logprobs.content, 'whole');

    const stream = await viaOpenAI.chat.completions.create({ ...req, stream: true });
    const streamed = [];
    for await (const part of stream)
      streamed.push(...(part.choices[0]?.logprobs?.content ?? []));
    same(streamed, 'streamed');
  });

  test('the model list names the fleet\'s model', async () => {
    const ids = [];
    for await (const m of viaOpenAI.models.list())
      ids.push(m.id);
    assert.deepEqual(ids, [STORIES]);
  });

  test('an unknown model is the library\'s NotFoundError naming it', async () => {
    await assert.rejects(
      viaOpenAI.chat.completions.create({ ...chat('hi'), model: 'no-such-model' }),
      (e) => {
        assert.ok(e instanceof OpenAI.NotFoundError, `got ${e?.constructor?.name}`);
        assert.equal(e.status, 404);
        assert.match(e.message, /no-such-model/);
        return true;
      });
  });

  test('a bad request is the library\'s BadRequestError', async () => {
    await assert.rejects(
      viaOpenAI.chat.completions.create({ ...chat('hi'), temperature: -1 }),
      (e) => {
        assert.ok(e instanceof OpenAI.BadRequestError, `got ${e?.constructor?.name}`);
        assert.equal(e.status, 400);
        assert.match(e.message, /temperature/);
        return true;
      });
  });
});

describe('ollama through the coordinator', () => {
  const options = { temperature: 0, num_predict: N };

  test('generate, whole and streamed, equals the agent\'s answer', async () => {
    const req = { model: STORIES, prompt: 'Once upon a time', options };
    const at = await atOllama.generate(req);
    const via = await viaOllama.generate(req);
    assert.ok(at.response.length > 0, 'the agent answered something');
    assert.equal(via.response, at.response);
    assert.equal(via.eval_count, at.eval_count);
    assert.equal(via.done, true);

    const stream = await viaOllama.generate({ ...req, stream: true });
    const text = await collect(stream, (p) => p.response);
    assert.equal(text, at.response);
  });

  test('chat, whole and streamed, equals the agent\'s answer', async () => {
    const req = { model: STORIES, messages: [{ role: 'user', content: 'Hello there' }],
      options };
    const at = await atOllama.chat(req);
    const via = await viaOllama.chat(req);
    assert.equal(via.message.content, at.message.content);

    const stream = await viaOllama.chat({ ...req, stream: true });
    const text = await collect(stream, (p) => p.message?.content);
    assert.equal(text, at.message.content);
  });

  test('list names the fleet\'s model', async () => {
    const { models } = await viaOllama.list();
    assert.deepEqual(models.map((m) => m.name), [STORIES]);
  });

  test('an unknown model is the library\'s ResponseError with 404', async () => {
    await assert.rejects(
      viaOllama.generate({ model: 'no-such-model', prompt: 'hi', options }),
      (e) => {
        assert.equal(e.name, 'ResponseError');
        assert.equal(e.status_code, 404);
        assert.match(e.error, /no-such-model/);
        return true;
      });
  });
});
