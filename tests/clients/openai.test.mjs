// openai.test.mjs — the agent's OpenAI API as the official `openai` package
// uses it: chat and completions, streamed and whole, stop strings, seeds,
// logprobs, the model list, and errors arriving as the library's own error
// types with the status, code and message an application would read.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

import { STORIES, runCli, startAgent } from './lib/agent.mjs';

let agent, small, client;

// Retries would hide the status of a failed first try.
const clientFor = (a) => new OpenAI({ baseURL: `${a.base}/v1`, apiKey: 'unused', maxRetries: 0,
  timeout: 30000 });

before(async () => {
  agent = await startAgent();
  // A context of 64 tokens, so a prompt can be too long for it.
  small = await startAgent({ ctx: 64 });
  client = clientFor(agent);
});

after(async () => {
  await agent?.stop();
  await small?.stop();
});

const chat = (content, extra = {}) => ({
  model: STORIES,
  messages: [{ role: 'user', content }],
  max_tokens: 32,
  temperature: 0,
  ...extra,
});

function assertUsage(usage, maxTokens) {
  assert.ok(usage.prompt_tokens > 0, 'a prompt has tokens');
  assert.ok(usage.completion_tokens > 0, 'something was generated');
  assert.ok(usage.completion_tokens <= maxTokens,
    `${usage.completion_tokens} tokens generated, more than max_tokens ${maxTokens}`);
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
}

// Streams req (a chat request) and returns the chunks and the text.
async function streamChat(req) {
  const stream = await client.chat.completions.create({ ...req, stream: true });
  const chunks = [];
  for await (const chunk of stream)
    chunks.push(chunk);
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
  return { chunks, text };
}

// A stop string taken from the middle of text: five characters at least a
// third of the way in, whose first occurrence is past the text's start.
function stopFrom(text) {
  const stop = text.slice(Math.floor(text.length / 3), Math.floor(text.length / 3) + 5);
  const cut = text.indexOf(stop);
  assert.ok(stop.length === 5 && cut > 0, `no stop string to take from ${JSON.stringify(text)}`);
  return { stop, before: text.slice(0, cut) };
}

describe('openai chat.completions', () => {
  test('a whole answer: content, finish reason, consistent usage, request id', async () => {
    const { data, response } = await client.chat.completions
      .create(chat('Tell me a story about a cat.'), { headers: { 'X-Request-Id': 'cats-1' } })
      .withResponse();
    assert.equal(data.object, 'chat.completion');
    assert.equal(data.model, STORIES);
    assert.equal(data.choices.length, 1);
    const choice = data.choices[0];
    assert.equal(choice.message.role, 'assistant');
    assert.equal(typeof choice.message.content, 'string');
    assert.ok(choice.message.content.length > 0, 'the answer has text');
    assert.ok(['stop', 'length'].includes(choice.finish_reason), choice.finish_reason);
    assertUsage(data.usage, 32);
    if (choice.finish_reason === 'length')
      assert.equal(data.usage.completion_tokens, 32);
    assert.equal(response.headers.get('x-request-id'), 'cats-1');
  });

  test('a stream with usage: same text as the whole answer, role first, usage once at the end',
    async () => {
      const req = chat('Tell me a story about a dog.', { max_tokens: 40 });
      const whole = await client.chat.completions.create(req);
      const { chunks, text } = await streamChat({ ...req,
        stream_options: { include_usage: true } });

      assert.equal(text, whole.choices[0].message.content);
      assert.equal(chunks[0].object, 'chat.completion.chunk');
      assert.equal(chunks[0].choices[0].delta.role, 'assistant');
      for (const c of chunks.slice(1))
        assert.equal(c.choices[0]?.delta?.role, undefined, 'the role comes once');
      const withUsage = chunks.filter((c) => c.usage != null);
      assert.equal(withUsage.length, 1, 'exactly one chunk carries the usage');
      const last = chunks[chunks.length - 1];
      assert.equal(last, withUsage[0], 'the usage chunk is the last');
      assert.deepEqual(last.choices, []);
      assert.deepEqual(last.usage, whole.usage);
      const finishes = chunks.map((c) => c.choices[0]?.finish_reason).filter((f) => f != null);
      assert.deepEqual(finishes, [whole.choices[0].finish_reason], 'one finish reason');
      assert.equal(new Set(chunks.map((c) => c.id)).size, 1, 'every chunk has the same id');
    });

  test('a stop string ends the answer just before it, whole and streamed', async () => {
    const req = chat('Tell me a story about a bird.', { max_tokens: 48 });
    const full = (await client.chat.completions.create(req)).choices[0].message.content;
    const { stop, before } = stopFrom(full);

    const cut = await client.chat.completions.create({ ...req, stop: [stop] });
    assert.equal(cut.choices[0].message.content, before);
    assert.ok(!cut.choices[0].message.content.includes(stop));
    assert.equal(cut.choices[0].finish_reason, 'stop');
    assertUsage(cut.usage, 48);

    // Streamed, the text that might begin the stop string is held back
    // until it is known not to.
    const { chunks, text } = await streamChat({ ...req, stop });
    assert.equal(text, before);
    assert.equal(chunks[chunks.length - 1].choices[0].finish_reason, 'stop');
  });

  test('a seed makes a sampled answer repeatable; different seeds differ', async () => {
    const req = chat('Tell me a story about a frog.', { max_tokens: 24, temperature: 1 });
    const text = async (seed) =>
      (await client.chat.completions.create({ ...req, seed })).choices[0].message.content;
    const first = await text(1234);
    assert.equal(await text(1234), first, 'the same seed gave another answer');
    const others = [];
    for (const seed of [1, 2, 3, 4, 5])
      others.push(await text(seed));
    assert.ok(new Set([first, ...others]).size > 1,
      `six seeds all gave ${JSON.stringify(first)}: temperature 1 is not sampling`);
  });

  test('logprobs: one entry per token, top lists sorted, the greedy token first', async () => {
    const r = await client.chat.completions.create(chat('Tell me a story about a fish.', {
      max_tokens: 12, logprobs: true, top_logprobs: 3 }));
    const entries = r.choices[0].logprobs.content;
    assert.equal(entries.length, r.usage.completion_tokens);
    const bytes = [];
    for (const e of entries) {
      assert.ok(e.logprob <= 0, `logprob ${e.logprob} above 0`);
      assert.equal(e.top_logprobs.length, 3);
      for (let k = 1; k < 3; k++)
        assert.ok(e.top_logprobs[k - 1].logprob >= e.top_logprobs[k].logprob,
          `top_logprobs out of order: ${JSON.stringify(e.top_logprobs)}`);
      assert.equal(e.top_logprobs[0].token, e.token, 'greedy picks the likeliest token');
      assert.equal(e.top_logprobs[0].logprob, e.logprob);
      bytes.push(...e.bytes);
    }
    assert.equal(Buffer.from(bytes).toString('utf8'), r.choices[0].message.content);
  });
});

describe('openai completions', () => {
  test('a completion is the text the CLI generates for the same prompt', async () => {
    const prompt = 'Once upon a time';
    const r = await client.completions.create({ model: STORIES, prompt, max_tokens: 16,
      temperature: 0 });
    assert.equal(r.object, 'text_completion');
    assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
    assertUsage(r.usage, 16);
    assert.ok(r.choices[0].text.length > 0);
    assert.equal(r.choices[0].text, await runCli(agent.data, STORIES, prompt, 16));
  });

  test('a streamed completion with a stop string', async () => {
    const req = { model: STORIES, prompt: 'The little dog', max_tokens: 40, temperature: 0 };
    const full = (await client.completions.create(req)).choices[0].text;
    const { stop, before } = stopFrom(full);
    const stream = await client.completions.create({ ...req, stop, stream: true });
    let text = '', finish = null;
    for await (const c of stream) {
      text += c.choices[0]?.text ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(text, before);
    assert.equal(finish, 'stop');
  });
});

describe('openai models', () => {
  test('models.list names the model in the store', async () => {
    const ids = [];
    for await (const m of client.models.list())
      ids.push(m.id);
    assert.ok(ids.includes(STORIES), `models.list gave ${JSON.stringify(ids)}`);
  });
});

describe('openai errors', () => {
  // Runs make (which must fail) and returns what it threw.
  async function failure(make) {
    try {
      await make();
    } catch (e) {
      return e;
    }
    assert.fail('the request succeeded');
  }

  test('an unknown model is a NotFoundError, streamed or not', async () => {
    for (const stream of [false, true]) {
      const e = await failure(() => client.chat.completions.create({ ...chat('Hi'),
        model: 'no-such-model', stream }));
      assert.ok(e instanceof OpenAI.NotFoundError, `${stream}: got ${e}`);
      assert.equal(e.status, 404);
      assert.equal(e.code, 'model_not_found');
      assert.match(e.message, /no-such-model/);
      assert.ok(e.requestID, 'the error carries the request id');
    }
  });

  for (const [what, body, field] of [
    ['max_tokens -1', { max_tokens: -1 }, 'max_tokens'],
    ['temperature 5', { temperature: 5 }, 'temperature'],
    ['an unknown field', { frequency_penalty_typo: 1 }, 'frequency_penalty_typo'],
  ]) {
    test(`${what} is a BadRequestError naming the field`, async () => {
      const e = await failure(() => client.chat.completions.create(chat('Hi', body)));
      assert.ok(e instanceof OpenAI.BadRequestError, `got ${e}`);
      assert.equal(e.status, 400);
      assert.equal(e.type, 'invalid_request_error');
      assert.ok(e.message.includes(`'${field}'`), e.message);
    });
  }

  test('a prompt longer than the context is context_length_exceeded', async () => {
    const long = 'The cat sat on the mat and looked at the big red ball. '.repeat(8);
    const c = clientFor(small);
    for (const make of [
      () => c.chat.completions.create(chat(long)),
      () => c.completions.create({ model: STORIES, prompt: long, max_tokens: 4, stream: true }),
    ]) {
      const e = await failure(make);
      assert.ok(e instanceof OpenAI.BadRequestError, `got ${e}`);
      assert.equal(e.status, 400);
      assert.equal(e.code, 'context_length_exceeded');
      assert.match(e.message, /\d+ tokens too long/);
    }
    // A prompt that fits is served by the same agent.
    const ok = await c.chat.completions.create(chat('Hi', { max_tokens: 4 }));
    assert.ok(ok.usage.total_tokens <= 64);
  });
});
