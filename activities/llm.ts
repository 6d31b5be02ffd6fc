// The LLM proposer: one chat-completions call per proposal through the openai package (any
// OpenAI-compatible server), its answer validated here and fed back with the reason when unusable.
// The API key is read from this worker's environment: it never enters the workflow or its history.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import OpenAI, { APIError, BadRequestError } from 'openai';
import type { ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PROGRAM_FILE, type ExperimentRecord, type Proposal, type RunConfig } from '../workflows/types';
import { ANSWER_SCHEMA, InvalidAnswer, applyEdits, checkPython, parseAnswer } from './edits';
import { compactHistory } from './history';

export const DEFAULT_LLM_TIMEOUT_MS = 2 * 60_000; // per call; a hung server is retried, not waited on all night
const CALL_RETRIES = 4; // the openai client retries 408/409/429/5xx, timeouts and dropped connections with backoff, honouring retry-after
const ANSWER_ROUNDS = 3; // unusable answers fed back before the experiment is recorded as a proposer failure
const HEARTBEAT_EVERY_MS = 10_000;
const LOG_TAIL_CHARS = 3_000;

export interface LlmContext {
  config: RunConfig;
  best: { commit: string; files: Record<string, string> };
  crashed?: { record: ExperimentRecord; files: Record<string, string> };
  records: ExperimentRecord[];
}

const SYSTEM = `You are an autonomous ML researcher improving a training script. Each experiment you propose is committed, trained for a fixed time budget and scored by val_bpb (validation bits per byte, lower is better); it is kept only if it beats the best so far.
Reply with one JSON object and nothing else:
{"description": "<one short line: what you change and why>", "base": "best" | "crashed", "edits": [{"path": "<editable file>", "search": "<exact text that occurs once in the file>", "replace": "<new text>"}]}
Rules: "search" must be copied exactly from the file and occur exactly once; an empty "search" with the whole new file as "replace" rewrites the file. Only edit the editable files. The code must stay valid Python. "base" is "best" unless you are fixing the crashed experiment shown to you.`;

function fileBlock(files: Record<string, string>): string {
  return Object.entries(files).map(([path, content]) => `## ${path}\n\`\`\`python\n${content}\n\`\`\``).join('\n\n');
}

export async function promptFor(ctx: LlmContext): Promise<ChatCompletionMessageParam[]> {
  // As it is now, not as it was at start: the human may steer the night by editing it.
  const program = await readFile(join(ctx.config.repo, PROGRAM_FILE), 'utf8').catch(() => '(no program.md)');
  const parts = [
    `# ${PROGRAM_FILE} (the human's instructions)\n\n${program}`,
    `# Results so far\n\n${compactHistory(ctx.records)}`,
    `# The best version (${ctx.best.commit.slice(0, 7)}): its editable files\n\n${fileBlock(ctx.best.files)}`,
  ];
  if (ctx.crashed) {
    const { record, files } = ctx.crashed;
    parts.push(
      `# The last experiment crashed: ${record.id} "${record.description}" (${record.reason})\n\nThe end of its log:\n\`\`\`\n${(record.logTail ?? '').slice(-LOG_TAIL_CHARS)}\n\`\`\`\n\n` +
        `You may fix it (set "base": "crashed"; your edits then apply to these files) or propose something else from the best version ("base": "best").\n\n${fileBlock(files)}`,
    );
  }
  parts.push('Propose the next experiment.');
  return [
    { role: 'system', content: SYSTEM },
    { role: 'user', content: parts.join('\n\n') },
  ];
}

/** Refusals that no retry will fix end the run with one clear line. */
function stopping(err: APIError): ApplicationFailure {
  const what = err.status === 404 ? `model not found (404): check --model / AUTORESEARCH_MODEL` : `the LLM endpoint refused the credentials (${err.status}): check OPENAI_API_KEY`;
  return ApplicationFailure.nonRetryable(what, 'LlmRefused');
}

export async function proposeWithLlm(ctx: LlmContext): Promise<Proposal> {
  const { config } = ctx;
  const client = new OpenAI({
    apiKey: process.env.OPENAI_API_KEY || 'none', // local OpenAI-compatible servers often need no key
    baseURL: process.env.OPENAI_BASE_URL || undefined,
    timeout: config.llmTimeoutMs ?? DEFAULT_LLM_TIMEOUT_MS,
    maxRetries: CALL_RETRIES,
  });
  const activity = Context.current();
  const ticker = setInterval(() => activity.heartbeat(), HEARTBEAT_EVERY_MS);
  const messages = await promptFor(ctx);
  let tokens = 0;
  let structured = true; // dropped if the server rejects response_format: the answer is then read from the text
  let lastProblem = '';
  try {
    for (let round = 1; round <= ANSWER_ROUNDS; round++) {
      let completion;
      try {
        completion = await client.chat.completions.create(
          {
            model: config.model!,
            messages,
            ...(structured ? { response_format: { type: 'json_schema' as const, json_schema: { name: 'experiment', strict: true, schema: ANSWER_SCHEMA as unknown as Record<string, unknown> } } } : {}),
          },
          { signal: activity.cancellationSignal },
        );
      } catch (err) {
        if (err instanceof BadRequestError && structured && /response_format|json_schema/i.test(err.message)) {
          structured = false;
          round--;
          continue;
        }
        if (err instanceof APIError && [401, 403, 404].includes(err.status ?? 0)) throw stopping(err);
        throw err; // rate limits and outages past the client's own retries: Temporal retries the activity with backoff
      }
      tokens += completion.usage?.total_tokens ?? 0;
      const text = completion.choices[0]?.message?.content ?? '';
      try {
        const answer = parseAnswer(text);
        const fixing = answer.base === 'crashed' && ctx.crashed !== undefined;
        const files = applyEdits(fixing ? ctx.crashed!.files : ctx.best.files, answer.edits, config.editable);
        checkPython(Object.fromEntries(Object.entries(files).filter(([p, c]) => c !== ctx.best.files[p])));
        return { ok: true, description: answer.description, files, tokens, fixes: fixing ? ctx.crashed!.record.id : undefined };
      } catch (err) {
        if (!(err instanceof InvalidAnswer)) throw err;
        lastProblem = err.message;
        messages.push({ role: 'assistant', content: text }, { role: 'user', content: `That answer cannot be used: ${err.message}\nReply again with the corrected JSON object only.` });
      }
    }
    return { ok: false, reason: `no usable answer in ${ANSWER_ROUNDS} tries (last: ${lastProblem.split('\n')[0]})`, tokens };
  } finally {
    clearInterval(ticker);
  }
}
