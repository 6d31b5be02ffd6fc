// `autoresearch try-model --model M [--experiments 3] [--repo PATH]`: before a night, ask an endpoint for a few
// proposals on a scratch copy of a research repo and measure what a night would get: how many answers are usable,
// how many would have crashed a training, how long each takes and what it costs. Nothing is trained or committed.
import { ApplicationFailure } from '@temporalio/common';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { checkerPython } from '../activities/edits';
import { git } from '../activities/git';
import { DEFAULT_LLM_TIMEOUT_MS, runProposal, type AnswerReport, type LlmContext } from '../activities/llm';
import { CONFIG_FILE, type Proposal, type RunConfig } from '../workflows/types';
import { parseCount, parseDuration, parseNumber, type Flags } from './args';
import { UserError } from './errors';
import { initRepo } from './init';

export const TRY_MODEL_OPTIONS = {
  model: { type: 'string' },
  experiments: { type: 'string' },
  repo: { type: 'string' },
  temperature: { type: 'string' },
  'llm-max-tokens': { type: 'string' },
  'llm-timeout': { type: 'string' },
} as const;

const DEFAULT_EXPERIMENTS = 3;
const GOOD_ANSWER_SHARE = 2 / 3; // "good": every proposal usable and at least this share of answers usable first time
const USABLE_PROPOSAL_SHARE = 1 / 2; // "usable": at least this share of proposals usable
const TIMEOUT_MARGIN = 2; // --llm-timeout should cover the slowest first token this many times over
const MAX_TEMPERATURE = 2; // the OpenAI API's upper bound

export type Verdict = 'good' | 'usable' | 'too weak for a night';
export const VERDICT_RULE =
  `good: every proposal usable and at least ${Math.round(GOOD_ANSWER_SHARE * 100)}% of answers usable; ` +
  `usable: at least ${USABLE_PROPOSAL_SHARE * 100}% of proposals usable; else too weak for a night`;

export interface TryModelFigures {
  proposals: Proposal[];
  answers: AnswerReport[];
  verdict: Verdict;
}

export function verdictOf(proposals: Proposal[], answers: AnswerReport[]): Verdict {
  const usableProposals = proposals.filter((p) => p.ok).length;
  const usableAnswers = answers.filter((a) => a.outcome === 'usable').length;
  if (usableProposals === proposals.length && usableAnswers >= GOOD_ANSWER_SHARE * answers.length) return 'good';
  if (usableProposals >= USABLE_PROPOSAL_SHARE * proposals.length && usableProposals > 0) return 'usable';
  return 'too weak for a night';
}

/** A scratch copy: a clone of `repo`, or the shipped tiny target; the caller removes `dir`. */
async function scratchRepo(repo: string | undefined, dir: string): Promise<string> {
  if (repo === undefined) return initRepo('tiny', join(dir, 'tiny'), () => {});
  const source = resolve(repo);
  if (!existsSync(join(source, '.git'))) throw new UserError(`try-model: ${source} is not a git repository`);
  await git(dir).raw(['clone', '--quiet', '--no-hardlinks', source, join(dir, 'repo')]);
  return join(dir, 'repo');
}

async function editableOf(repo: string): Promise<string[]> {
  const text = await readFile(join(repo, CONFIG_FILE), 'utf8').catch(() => '{}');
  try {
    const editable = (JSON.parse(text) as { editable?: unknown }).editable;
    return Array.isArray(editable) && editable.every((p) => typeof p === 'string') ? editable : ['train.py'];
  } catch {
    throw new UserError(`try-model: ${CONFIG_FILE} in the repo is not valid JSON`);
  }
}

const FIELD_WIDTH = 18; // `key:` padded, so the values line up as in status
const field = (key: string, value: string) => `${`${key}:`.padEnd(FIELD_WIDTH)}${value}`;
const percent = (part: number, whole: number) => `${whole ? Math.round((100 * part) / whole) : 0}%`;
const seconds = (s: number) => `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)] ?? 0;

function proposalLine(i: number, p: Proposal, answers: AnswerReport[], secondsTaken: number): string {
  const count = `${answers.length} answer${answers.length === 1 ? '' : 's'}`;
  const how = `${count}, ${seconds(secondsTaken)}, ${p.tokens.toLocaleString('en')} tokens`;
  return p.ok
    ? `proposal ${i}: usable (${how}): ${p.change} — "${p.description}"`
    : `proposal ${i}: failed (${how}): ${p.reason}`;
}

/** The figures as `key: value` lines, the parse rate and crash rate per answer (a proposal may take several). */
function summary(figures: TryModelFigures, silenceMs: number): string[] {
  const { proposals, answers } = figures;
  const n = answers.length;
  const usable = answers.filter((a) => a.outcome === 'usable').length;
  const rejected = answers.filter((a) => a.outcome === 'check').length;
  const latencies = answers.map((a) => a.seconds);
  const slowestFirst = Math.max(0, ...answers.map((a) => a.firstChunkSeconds));
  const tokens = proposals.reduce((sum, p) => sum + p.tokens, 0) / Math.max(1, proposals.length);
  const lines = [
    field('answers', `${n}`),
    field('parse rate', `${percent(usable, n)} (${usable} of ${n} answers gave a usable proposal)`),
    field(
      'crash rate',
      `${percent(rejected, n)} (${rejected} of ${n} answers held code that cannot run: the checker stopped them)`,
    ),
    field('proposals', `${proposals.filter((p) => p.ok).length} of ${proposals.length} usable`),
    field(
      'latency',
      `median ${seconds(median(latencies))}, slowest ${seconds(Math.max(0, ...latencies))} per answer; ` +
        `first token after at most ${seconds(slowestFirst)}`,
    ),
    field('tokens', `${Math.round(tokens).toLocaleString('en')} per proposal (mean)`),
    field('verdict', `${figures.verdict} (${VERDICT_RULE})`),
  ];
  if (slowestFirst * TIMEOUT_MARGIN * 1000 > silenceMs) {
    const advised = `--llm-timeout ${Math.ceil((slowestFirst * TIMEOUT_MARGIN) / 60)}m`;
    const slowest = seconds(slowestFirst);
    lines.push(
      field('warning', `the slowest first token came after ${slowest}: start the night with ${advised} or more`),
    );
  }
  return lines;
}

/** Asks for `experiments` proposals in a row, each told the earlier ones are in flight, and prints the figures. */
export async function tryModel(
  config: RunConfig,
  experiments: number,
  log: (line: string) => void,
): Promise<TryModelFigures> {
  const best = {
    commit: (await git(config.repo).raw(['rev-parse', 'HEAD'])).trim(),
    files: {} as Record<string, string>,
  };
  for (const path of config.editable) {
    best.files[path] = await readFile(join(config.repo, path), 'utf8').catch(() => {
      throw new UserError(`try-model: the editable file ${path} is not in the repo`);
    });
  }
  const proposals: Proposal[] = [];
  const answers: AnswerReport[] = [];
  for (let key = 1; key <= experiments; key++) {
    const mine: AnswerReport[] = [];
    const inFlight = proposals.flatMap((p) => (p.ok ? [p.description] : []));
    const ctx: LlmContext = { config, best, records: [], key, inFlight };
    const started = Date.now();
    const proposal = await runProposal(ctx, { heartbeat: () => {}, onAnswer: (a) => mine.push(a) }).catch(
      (err: unknown) => {
        if (err instanceof ApplicationFailure && err.type === 'LlmRefused') {
          throw new UserError(`try-model: ${err.message}`);
        }
        throw err;
      },
    );
    proposals.push(proposal);
    answers.push(...mine);
    log(proposalLine(key, proposal, mine, (Date.now() - started) / 1000));
  }
  const figures = { proposals, answers, verdict: verdictOf(proposals, answers) };
  for (const line of summary(figures, config.llmTimeoutMs ?? DEFAULT_LLM_TIMEOUT_MS)) log(line);
  return figures;
}

/** The verb: flags checked at the edge, a scratch copy made and removed. */
export async function tryModelCommand(
  flags: Flags,
  env = process.env,
  log: (line: string) => void = console.log,
): Promise<TryModelFigures> {
  const model = (flags.model as string | undefined) ?? env.AUTORESEARCH_MODEL;
  if (!model) throw new UserError('try-model: name the model with --model NAME (or AUTORESEARCH_MODEL)');
  if (!env.OPENAI_BASE_URL && !env.OPENAI_API_KEY) {
    throw new UserError('try-model needs OPENAI_BASE_URL (an OpenAI-compatible server) or OPENAI_API_KEY (OpenAI)');
  }
  const experiments =
    flags.experiments === undefined ? DEFAULT_EXPERIMENTS : parseCount('--experiments', flags.experiments as string);
  const temperature =
    flags.temperature === undefined
      ? undefined
      : parseNumber('--temperature', flags.temperature as string, 0, MAX_TEMPERATURE);
  const llmTimeoutMs =
    flags['llm-timeout'] === undefined ? undefined : parseDuration('--llm-timeout', flags['llm-timeout'] as string);
  const maxTokensPerCall =
    flags['llm-max-tokens'] === undefined
      ? undefined
      : parseCount('--llm-max-tokens', flags['llm-max-tokens'] as string);
  const dir = await mkdtemp(join(tmpdir(), 'autoresearch-try-model-'));
  try {
    const repo = await scratchRepo(flags.repo as string | undefined, dir);
    const checker = checkerPython();
    const checking = checker?.pyflakes
      ? `pyflakes (${checker.python})`
      : checker
        ? 'parse check only, no pyflakes'
        : 'none';
    log(field('model', `${model} at ${env.OPENAI_BASE_URL ?? 'OpenAI'}`));
    log(field('scratch repo', `${repo} (a copy of ${flags.repo ?? 'the tiny target'}; removed afterwards)`));
    log(field('checker', checking));
    // Nothing trains: the training fields are placeholders.
    const config: RunConfig = {
      tag: 'try-model',
      repo,
      proposer: 'llm',
      editable: await editableOf(repo),
      command: '',
      timeoutMs: 0,
      budgetSeconds: 0,
      parallel: 1,
      seed: 0,
      minImprovement: 0,
      model,
      llmTimeoutMs,
      temperature,
      maxTokensPerCall,
    };
    return await tryModel(config, experiments, log);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
