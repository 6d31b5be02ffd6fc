// The captured night of a weak local model (../shared/llm-captures/, beside the clone): every chat-completions call
// of a 6-experiment study on the tiny target, request and answer, replayed by the tests through the fake server.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './helpers';
import type { Reply } from './fake-openai';

export const CAPTURES = join(ROOT, '..', 'shared', 'llm-captures', 'qwen2.5-coder-1.5b-q4km.jsonl');

export interface Capture {
  call: number;
  latency_s: number;
  request: { model: string; messages: { role: string; content: string }[] };
  answer: string;
  usage: { total_tokens: number };
}

export function loadCaptures(): Capture[] {
  return readFileSync(CAPTURES, 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Capture);
}

/** The editable file as the prompt showed it under `heading` (the best version, or the crashed one). */
export function shownFile(capture: Capture, heading: string): string | undefined {
  const prompt = capture.request.messages[1].content;
  const at = prompt.indexOf(heading);
  return at < 0 ? undefined : /## train\.py\n```python\n([\s\S]*?)\n```/.exec(prompt.slice(at))?.[1];
}

/** The captured answers as the server's replies, in order, with their token counts. */
export const replies = (captures: Capture[]): Reply[] =>
  captures.map((c) => ({ content: c.answer, tokens: c.usage.total_tokens }));
