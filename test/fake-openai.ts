// A real local HTTP server speaking the chat-completions protocol, serving scripted answers —
// good ones and the bad ones a night brings: 429s, 500s, hangs, 401s and garbage.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Reply {
  status?: number; // default 200
  content?: string; // the assistant message, for a 200
  body?: string; // a raw body instead (garbage, error objects)
  headers?: Record<string, string>;
  hang?: boolean; // never answer
  tokens?: number; // usage.total_tokens, default 100
}

export interface Recorded {
  at: number;
  headers: IncomingMessage['headers'];
  body: { model: string; messages: { role: string; content: string }[]; response_format?: { type: string } };
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

export function answer(description: string, edits: { path: string; search: string; replace: string }[], base = 'best'): string {
  return JSON.stringify({ description, base, edits });
}

/**
 * Starts the server and points this process's openai clients at it (OPENAI_BASE_URL and, when
 * given, OPENAI_API_KEY, as a control worker's environment would); close() undoes both.
 */
export async function fakeOpenAI(apiKey?: string): Promise<FakeOpenAI> {
  const hanging: ServerResponse[] = [];
  const fake: FakeOpenAI = {
    baseURL: '',
    requests: [],
    script: [],
    fallback: () => ({ status: 500, body: '{"error":{"message":"script exhausted"}}' }),
    close: () =>
      new Promise<void>((done) => {
        delete process.env.OPENAI_BASE_URL;
        delete process.env.OPENAI_API_KEY;
        for (const res of hanging) res.destroy();
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
        hanging.push(res);
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
