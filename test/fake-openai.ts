// A real local HTTP server speaking the chat-completions protocol, serving scripted answers —
// good ones and the bad ones a night brings: 429s, 500s, hangs, 401s and garbage. A request with
// `stream: true` is answered as server-sent events, which may crawl, go silent or break off mid-answer.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Reply {
  status?: number; // default 200
  content?: string; // the assistant message, for a 200
  body?: string; // a raw body instead (garbage, error objects)
  headers?: Record<string, string>;
  hang?: boolean; // never answer
  tokens?: number; // usage.total_tokens, default 100
  chunkChars?: number; // streamed: characters of content per chunk (default 16)
  chunkDelayMs?: number; // streamed: pause before each chunk, the first included
  silentAfter?: number; // streamed: chunks sent before the server stops sending (the connection stays open)
  dropAfter?: number; // streamed: chunks sent before the connection is cut
  noUsage?: boolean; // streamed: no usage chunk even when asked for
}

export interface Recorded {
  at: number;
  headers: IncomingMessage['headers'];
  body: {
    model: string;
    messages: { role: string; content: string }[];
    response_format?: { type: string };
    stream?: boolean;
    stream_options?: { include_usage?: boolean };
    max_tokens?: number;
    max_completion_tokens?: number;
    temperature?: number;
    seed?: number;
  };
}

export interface FakeOpenAI {
  baseURL: string;
  requests: Recorded[];
  script: (Reply | ((request: Recorded) => Reply))[]; // consumed in order; `fallback` after
  fallback: (request: Recorded) => Reply;
  close(): Promise<void>;
}

export function completion(content: string, tokens = 100): string {
  return JSON.stringify({
    id: 'chatcmpl-test',
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: 'test-model',
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    usage: { prompt_tokens: tokens - 20, completion_tokens: 20, total_tokens: tokens },
  });
}

export function answer(
  description: string,
  edits: { path: string; search: string; replace: string }[],
  base = 'best',
  set?: Record<string, unknown>,
): string {
  return JSON.stringify({ description, base, ...(set ? { set } : {}), edits });
}

const CHUNK = { id: 'chatcmpl-test', object: 'chat.completion.chunk', model: 'test-model' };
const event = (data: object) =>
  `data: ${JSON.stringify({ ...CHUNK, created: Math.floor(Date.now() / 1000), ...data })}\n\n`;
const chunk = (delta: object, finish: string | null = null) =>
  event({ choices: [{ index: 0, delta, finish_reason: finish }] });

/** Sends `reply` as server-sent events, the way streaming servers do; resolves when done or left silent. */
async function stream(res: ServerResponse, reply: Reply, includeUsage: boolean): Promise<void> {
  const content = reply.content ?? '';
  const size = reply.chunkChars ?? 16;
  const pieces = Array.from({ length: Math.ceil(content.length / size) }, (_, i) =>
    content.slice(i * size, (i + 1) * size),
  );
  res.writeHead(200, { 'content-type': 'text/event-stream', ...reply.headers });
  if (reply.chunkDelayMs) await new Promise((r) => setTimeout(r, reply.chunkDelayMs));
  if (res.destroyed) return;
  res.write(chunk({ role: 'assistant', content: '' }));
  for (const [i, piece] of pieces.entries()) {
    if (i === reply.silentAfter) return; // the caller's silence limit must notice
    if (i === reply.dropAfter) return void res.destroy();
    if (reply.chunkDelayMs) await new Promise((r) => setTimeout(r, reply.chunkDelayMs));
    if (res.destroyed) return;
    res.write(chunk({ content: piece }));
  }
  res.write(chunk({}, 'stop'));
  const tokens = reply.tokens ?? 100;
  const usage = { prompt_tokens: tokens - 20, completion_tokens: 20, total_tokens: tokens };
  if (includeUsage && !reply.noUsage) res.write(event({ choices: [], usage }));
  res.end('data: [DONE]\n\n');
}

/**
 * Starts the server and points this process's openai clients at it (OPENAI_BASE_URL and, when
 * given, OPENAI_API_KEY, as a control worker's environment would); close() undoes both.
 */
export async function fakeOpenAI(apiKey?: string): Promise<FakeOpenAI> {
  const held: ServerResponse[] = []; // hanging or streaming responses, cut on close
  const fake: FakeOpenAI = {
    baseURL: '',
    requests: [],
    script: [],
    fallback: () => ({ status: 500, body: '{"error":{"message":"script exhausted"}}' }),
    close: () =>
      new Promise<void>((done) => {
        delete process.env.OPENAI_BASE_URL;
        delete process.env.OPENAI_API_KEY;
        for (const res of held) res.destroy();
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
  const server = createServer((req, res) => {
    let raw = '';
    req.on('data', (chunk) => (raw += chunk));
    req.on('end', () => {
      const recorded: Recorded = { at: Date.now(), headers: req.headers, body: JSON.parse(raw || '{}') };
      fake.requests.push(recorded);
      const next = fake.script.shift() ?? fake.fallback;
      const reply = typeof next === 'function' ? next(recorded) : next;
      if (reply.hang) {
        held.push(res);
        return;
      }
      if (recorded.body.stream && (reply.status ?? 200) === 200 && reply.body === undefined) {
        held.push(res);
        void stream(res, reply, recorded.body.stream_options?.include_usage === true);
        return;
      }
      res.writeHead(reply.status ?? 200, { 'content-type': 'application/json', ...reply.headers });
      res.end(reply.body ?? completion(reply.content ?? '', reply.tokens));
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  fake.baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  process.env.OPENAI_BASE_URL = fake.baseURL;
  if (apiKey) process.env.OPENAI_API_KEY = apiKey;
  return fake;
}
