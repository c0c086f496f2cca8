// admission.test.mjs — what the coordinator refuses before any node is
// asked, on the generation endpoints, as the official `openai` and `ollama`
// packages see it: a missing, wrong or revoked API key is 401; a key whose
// model pattern does not admit the model is 403, as is an inference key on
// the admin API; a key past its requests or tokens per minute is 429 with
// Retry-After; and past --max-requests generations at once (1 here) a
// request is 503 with Retry-After, until the one in flight ends.
//
// (it_keys.c covers the same refusals on the admin API, through mlxctl.)

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { Ollama } from 'ollama';

import { SLOW, STORIES, startCluster } from './lib/agent.mjs';

let cluster, base, admin;

const openai = (key) => new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0,
  timeout: 120000 });
const ollama = (key) => new Ollama({ host: base,
  headers: key !== undefined ? { Authorization: `Bearer ${key}` } : {} });

// POST /api/v1/keys with spec; the new key.
async function createKey(spec) {
  const headers = admin !== undefined ? { Authorization: `Bearer ${admin}` } : {};
  const r = await fetch(`${base}/api/v1/keys`, { method: 'POST', headers,
    body: JSON.stringify(spec) });
  const body = await r.json();
  assert.equal(r.status, 201, JSON.stringify(body));
  return body.key;
}

before(async () => {
  cluster = await startCluster(1, { models: [STORIES, SLOW],
    coordinator: { args: ['--max-requests', '1'] } });
  base = cluster.coordinator.base;
  // The first key is made from loopback while none exists; from then on
  // every request needs one.
  admin = await createKey({ name: 'ops', scope: 'admin' });
});

after(async () => {
  await cluster?.stop();
});

const chat = { model: STORIES, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 8,
  temperature: 0 };
const generate = { model: STORIES, prompt: 'Hello', options: { num_predict: 8 } };
const ollamaChat = { model: STORIES, messages: chat.messages, options: { num_predict: 8 } };

// Asserts that p rejects with the openai package's error class cls and
// status, returning the error.
async function refused(p, cls, status) {
  let error;
  await assert.rejects(p, (e) => {
    error = e;
    assert.ok(e instanceof cls, `got ${e?.constructor?.name}: ${e?.message}`);
    assert.equal(e.status, status);
    return true;
  });
  return error;
}

// Asserts that p rejects with the ollama package's ResponseError and status.
async function refusedOllama(p, status, pattern) {
  await assert.rejects(p, (e) => {
    assert.equal(e.name, 'ResponseError', `${e}`);
    assert.equal(e.status_code, status, e.error);
    assert.match(e.error, pattern);
    return true;
  });
}

describe('keys on the generation endpoints', () => {
  test('no key, a wrong key and a revoked key are 401', async () => {
    await refusedOllama(ollama().generate(generate), 401, /key/i);
    await refusedOllama(ollama().chat(ollamaChat), 401, /key/i);
    const wrong = await refused(openai('mlx-notakey').chat.completions.create(chat),
      OpenAI.AuthenticationError, 401);
    assert.equal(wrong.headers.get('www-authenticate'), 'Bearer');
    await refused(openai('mlx-notakey').completions.create({ model: STORIES, prompt: 'Hi' }),
      OpenAI.AuthenticationError, 401);

    const key = await createKey({ name: 'soon-revoked' });
    const ok = await openai(key).chat.completions.create(chat);
    assert.ok(ok.choices[0].message.content.length > 0);
    const r = await fetch(`${base}/api/v1/keys/soon-revoked`, { method: 'DELETE',
      headers: { Authorization: `Bearer ${admin}` } });
    assert.equal(r.status, 200);
    await refused(openai(key).chat.completions.create(chat), OpenAI.AuthenticationError, 401);
    await refusedOllama(ollama(key).generate(generate), 401, /key/i);
  });

  test('a key whose pattern does not admit the model is 403; the model list hides it',
    async () => {
      const key = await createKey({ name: 'stories-only', models: 'stor*' });
      const ok = await openai(key).chat.completions.create(chat);
      assert.ok(ok.choices[0].message.content.length > 0);
      const e = await refused(openai(key).chat.completions.create({ ...chat, model: SLOW }),
        OpenAI.PermissionDeniedError, 403);
      assert.match(e.message, new RegExp(SLOW));
      await refusedOllama(ollama(key).generate({ ...generate, model: SLOW }), 403,
        new RegExp(SLOW));
      const ids = [];
      for await (const m of openai(key).models.list())
        ids.push(m.id);
      assert.deepEqual(ids, [STORIES]);
      const { models } = await ollama(key).list();
      assert.deepEqual(models.map((m) => m.name), [STORIES]);
    });

  test('an inference key on the admin API is 403', async () => {
    const key = await createKey({ name: 'infer-only', scope: 'infer' });
    for (const path of ['/api/v1/nodes', '/api/v1/models', '/api/v1/keys']) {
      const r = await fetch(`${base}${path}`, { headers: { Authorization: `Bearer ${key}` } });
      const body = await r.json();
      assert.equal(r.status, 403, path);
      assert.equal(body.error.type, 'permission_error', path);
    }
  });
});

describe('rate limits on the generation endpoints', () => {
  test('past its requests per minute a key is 429 with Retry-After', async () => {
    const key = await createKey({ name: 'two-a-minute', rpm: 2 });
    await openai(key).chat.completions.create(chat);
    await ollama(key).generate(generate);
    const e = await refused(openai(key).chat.completions.create(chat), OpenAI.RateLimitError,
      429);
    assert.match(e.message, /requests per minute/);
    const after = Number(e.headers.get('retry-after'));
    assert.ok(after >= 1 && after <= 60, `Retry-After: ${e.headers.get('retry-after')}`);
    await refusedOllama(ollama(key).generate(generate), 429, /requests per minute/);
    // Another key is not held back.
    await openai(admin).chat.completions.create(chat);
  });

  test('past its tokens per minute a key is 429 with Retry-After', async () => {
    const TPM = 20;
    const key = await createKey({ name: 'few-tokens', tpm: TPM });
    // Admitted with a full bucket; the tokens it used are charged as it
    // ends, and take the bucket below empty.
    const first = await openai(key).completions.create({ model: STORIES,
      prompt: 'Once upon a time', max_tokens: 32, temperature: 0 });
    assert.ok(first.usage.total_tokens > TPM, `${JSON.stringify(first.usage)}`);
    const e = await refused(openai(key).completions.create({ model: STORIES, prompt: 'Hi',
      max_tokens: 1 }), OpenAI.RateLimitError, 429);
    assert.match(e.message, /tokens per minute/);
    const after = Number(e.headers.get('retry-after'));
    assert.ok(after >= 1 && after <= 60, `Retry-After: ${e.headers.get('retry-after')}`);
    await refusedOllama(ollama(key).generate(generate), 429, /tokens per minute/);
  });
});

describe('--max-requests', () => {
  test('past the limit a request is 503 with Retry-After until the one in flight ends',
    async () => {
      const client = openai(admin);
      const stream = await client.completions.create({ model: SLOW,
        prompt: 'Once upon a time', max_tokens: 1000, temperature: 0, stream: true });
      const iterator = stream[Symbol.asyncIterator]();
      assert.equal((await iterator.next()).done, false);
      // One generation runs: the limit.
      const e = await refused(client.chat.completions.create(chat),
        OpenAI.InternalServerError, 503);
      assert.match(e.message, /--max-requests/);
      assert.ok(Number(e.headers.get('retry-after')) >= 1, 'Retry-After');
      await refusedOllama(ollama(admin).generate({ ...generate, stream: true }), 503,
        /--max-requests/);
      let finish = null;
      for (let r = await iterator.next(); !r.done; r = await iterator.next())
        finish = r.value.choices[0]?.finish_reason ?? finish;
      assert.equal(finish, 'length', 'the long generation ended early');
      // It has ended: the next requests are served at once.
      const ok = await client.chat.completions.create(chat);
      assert.ok(ok.choices[0].message.content.length > 0);
      const s = await ollama(admin).generate({ ...generate, stream: true });
      for await (const part of s)
        assert.equal(part.error, undefined);
    });
});
