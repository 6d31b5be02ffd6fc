// The verbs that start and steer a run: start, pause, resume, stop.
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { branchOf, checkRepo } from '../activities/repo';
import { pauseSignal, researchWorkflow, resumeSignal, stopSignal } from '../workflows';
import { ALL_SEARCH_ATTRIBUTES, RESEARCH_TAG } from '../workflows/search-attributes';
import {
  CONFIG_FILE,
  CONTROL_QUEUE,
  DEFAULT_TIMEOUT_MS,
  STARTUP_ALLOWANCE_MS,
  workflowIdFor,
  type ProposerKind,
  type RunConfig,
} from '../workflows/types';
import { formatDuration, parseCidrs, parseCount, parseDuration, parseNumber, parseTag, parseUntil, required, type Flags } from './args';
import { UserError } from './errors';

const DEFAULT_BASELINE_RUNS = 5; // the baseline's repeats: σ on 4 degrees of freedom and a bar of 5 runs from the start
const MAX_FALSE_KEEP = 0.5; // a coin flip: any higher and a change that does nothing is kept more often than not
const DEFAULT_VERIFY_RUNS = 3; // the morning verdict: the baseline and the best, three runs each

export const START_OPTIONS = {
  repo: { type: 'string' },
  tag: { type: 'string' },
  proposer: { type: 'string' },
  'max-experiments': { type: 'string' },
  until: { type: 'string' },
  timeout: { type: 'string' },
  budget: { type: 'string' },
  parallel: { type: 'string' },
  command: { type: 'string' },
  editable: { type: 'string' },
  seed: { type: 'string' },
  'min-improvement': { type: 'string' },
  model: { type: 'string' },
  'max-tokens-total': { type: 'string' },
  'llm-timeout': { type: 'string' },
  ahead: { type: 'string' },
  'rerun-grace': { type: 'string' },
  temperature: { type: 'string' },
  'llm-max-tokens': { type: 'string' },
  'max-proposer-failures': { type: 'string' },
  'history-size': { type: 'string' },
  'baseline-runs': { type: 'string' },
  'confirm-z': { type: 'string' },
  'false-keep': { type: 'string' },
  'verify-runs': { type: 'string' },
  agent: { type: 'string' },
  'agent-env': { type: 'string', multiple: true },
  'agent-timeout': { type: 'string' },
  'agent-network': { type: 'boolean' },
  'agent-host-network': { type: 'boolean' },
  'agent-network-allow': { type: 'string' },
} as const;

/** What `compare` shares with `start`: where the repo is, what a training runs and for how long. */
export const COMPARE_OPTIONS = {
  repo: START_OPTIONS.repo,
  tag: START_OPTIONS.tag,
  parallel: START_OPTIONS.parallel,
  timeout: START_OPTIONS.timeout,
  budget: START_OPTIONS.budget,
  command: START_OPTIONS.command,
  editable: START_OPTIONS.editable,
} as const;

const PROPOSERS: ProposerKind[] = ['llm', 'sweep', 'tpe', 'cmaes', 'mixed', 'agent'];
const MAX_AGENT_TIMEOUT_MS = 25 * 60_000; // inside the proposer activity's 30 minutes
const MAX_TEMPERATURE = 2; // the chat-completions API's upper bound

/** The research repo's own defaults (autoresearch.json): below flags and environment, above ours. */
interface RepoConfig {
  command?: string;
  editable?: string[];
  timeout?: string;
  budget?: number;
}

async function readRepoConfig(repo: string): Promise<RepoConfig> {
  let text: string;
  try {
    text = await readFile(join(repo, CONFIG_FILE), 'utf8');
  } catch {
    return {};
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${CONFIG_FILE} in ${repo} is not valid JSON (${(err as Error).message})`);
  }
  const config = parsed as RepoConfig;
  const ok =
    typeof parsed === 'object' && parsed !== null &&
    (config.command === undefined || typeof config.command === 'string') &&
    (config.editable === undefined || (Array.isArray(config.editable) && config.editable.every((p) => typeof p === 'string'))) &&
    (config.timeout === undefined || typeof config.timeout === 'string') &&
    (config.budget === undefined || typeof config.budget === 'number');
  if (!ok) throw new UserError(`${CONFIG_FILE} in ${repo}: expected {"command": string, "editable": [string], "timeout": "5m", "budget": seconds}`);
  return config;
}

/** The llm proposer when an endpoint is configured, else the offline sweep; the reason is printed at start. */
function chooseProposer(flag: string | undefined, env: NodeJS.ProcessEnv, agent: boolean): { proposer: ProposerKind; why: string } {
  if (flag !== undefined && !PROPOSERS.includes(flag as ProposerKind)) throw new UserError(`--proposer: "${flag}" is not one of ${PROPOSERS.join(', ')}`);
  const endpoint = env.OPENAI_BASE_URL ? `OPENAI_BASE_URL is ${env.OPENAI_BASE_URL}` : env.OPENAI_API_KEY ? 'OPENAI_API_KEY is set' : null;
  if ((flag === 'llm' || (flag === 'mixed' && !agent)) && !endpoint) {
    const or = flag === 'mixed' ? ', or a coding agent: --agent CMD' : '';
    throw new UserError(`--proposer ${flag} needs OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (an OpenAI-compatible server)${or}`);
  }
  if (flag) return { proposer: flag as ProposerKind, why: `--proposer ${flag}` };
  if (endpoint) return { proposer: 'llm', why: endpoint };
  return { proposer: 'sweep', why: 'no OPENAI_API_KEY or OPENAI_BASE_URL is set' };
}

/** The hard limit and the training seconds of each experiment: flags > environment > autoresearch.json > defaults. */
function timing(flags: Flags, env: NodeJS.ProcessEnv, file: RepoConfig): { timeoutMs: number; budgetSeconds: number } {
  const timeoutText = (flags.timeout as string | undefined) ?? env.AUTORESEARCH_TIMEOUT ?? file.timeout;
  const timeoutMs = timeoutText === undefined ? DEFAULT_TIMEOUT_MS : parseDuration('--timeout', timeoutText);
  const budgetText = (flags.budget as string | undefined) ?? env.AUTORESEARCH_BUDGET ?? (file.budget === undefined ? undefined : String(file.budget));
  const defaultBudget = Math.max(timeoutMs - STARTUP_ALLOWANCE_MS, timeoutMs / 2) / 1000;
  const budgetSeconds = budgetText === undefined ? Math.round(defaultBudget) : parseNumber('--budget', budgetText, 1);
  if (budgetSeconds * 1000 >= timeoutMs) {
    throw new UserError(`--budget ${budgetSeconds}s leaves no time for start-up and evaluation within --timeout ${formatDuration(timeoutMs)}`);
  }
  return { timeoutMs, budgetSeconds };
}

/** --until, refused when not even one experiment could finish before it (the run would end with none). */
function deadline(text: string | undefined, timeoutMs: number, now = Date.now()): number | undefined {
  if (text === undefined) return undefined;
  const untilMs = parseUntil(text, now);
  if (untilMs - now < timeoutMs) {
    const away = formatDuration(untilMs - now);
    const limit = formatDuration(timeoutMs);
    throw new UserError(`--until ${text} is ${away} away, less than one --timeout (${limit}): no experiment could finish before it`);
  }
  return untilMs;
}

/** Flags > environment > the repo's autoresearch.json > defaults, each validated here. */
export async function runConfigFrom(flags: Flags, env = process.env, verb = 'start'): Promise<{ config: RunConfig; why: string }> {
  const repo = resolve(required(flags, 'repo', verb));
  const tag = parseTag(flags.tag as string | undefined);
  const file = await readRepoConfig(repo);
  const str = (name: string) => flags[name] as string | undefined;
  const count = (name: string, min = 1) => (str(name) === undefined ? undefined : parseCount(`--${name}`, str(name)!, min));
  const editable = str('editable')?.split(',').map((p) => p.trim()).filter(Boolean) ?? file.editable ?? ['train.py'];
  if (editable.length === 0) throw new UserError('--editable: name at least one file');
  for (const path of editable) {
    if (path.startsWith('/') || path.split('/').includes('..')) throw new UserError(`--editable: ${path} must be a path inside the repo`);
  }
  const { timeoutMs, budgetSeconds } = timing(flags, env, file);
  const { proposer, why } = chooseProposer(str('proposer'), env, str('agent') !== undefined);
  const usesLlm = proposer === 'llm' || (proposer === 'mixed' && str('agent') === undefined);
  const model = str('model') ?? env.AUTORESEARCH_MODEL;
  if (usesLlm && !model) throw new UserError(`the ${proposer} proposer needs a model: --model NAME or AUTORESEARCH_MODEL`);
  if (str('false-keep') !== undefined && str('confirm-z') !== undefined)
    throw new UserError('--false-keep replaces --confirm-z: give one of them');
  const llmOnly = ['temperature', 'llm-max-tokens'].filter((name) => str(name) !== undefined);
  if (!usesLlm && llmOnly.length) throw new UserError(`--${llmOnly[0]} applies to the llm proposer only (this run uses ${proposer}${proposer === 'mixed' ? ' with an agent' : ''})`);
  const agent = agentFlags(flags, proposer);
  const config: RunConfig = {
    tag,
    repo,
    proposer,
    ...agent,
    editable,
    command: str('command') ?? file.command ?? 'python train.py',
    timeoutMs,
    budgetSeconds,
    parallel: count('parallel') ?? 1,
    maxExperiments: count('max-experiments'),
    untilMs: deadline(str('until'), timeoutMs),
    seed: count('seed', 0) ?? 0,
    minImprovement: str('min-improvement') === undefined ? 0 : parseNumber('--min-improvement', str('min-improvement')!),
    model,
    llmTimeoutMs: str('llm-timeout') === undefined ? undefined : parseDuration('--llm-timeout', str('llm-timeout')!),
    maxTokensTotal: count('max-tokens-total'),
    ahead: count('ahead', 0),
    rerunGraceMs: str('rerun-grace') === undefined ? undefined : parseDuration('--rerun-grace', str('rerun-grace')!),
    temperature: str('temperature') === undefined ? undefined : parseNumber('--temperature', str('temperature')!, 0, MAX_TEMPERATURE),
    maxTokensPerCall: count('llm-max-tokens'),
    maxProposerFailures: count('max-proposer-failures'),
    experimentsPerHistory: count('history-size'),
    baselineRuns: count('baseline-runs') ?? DEFAULT_BASELINE_RUNS,
    confirmZ: str('confirm-z') === undefined ? undefined : parseNumber('--confirm-z', str('confirm-z')!),
    falseKeep: str('false-keep') === undefined ? undefined : parseNumber('--false-keep', str('false-keep')!, 0, MAX_FALSE_KEEP),
    verifyRuns: count('verify-runs', 0) ?? DEFAULT_VERIFY_RUNS,
  };
  return { config, why };
}

/** --agent and its companions: required with --proposer agent, taken by mixed (its code changes), refused elsewhere. */
function agentFlags(flags: Flags, proposer: ProposerKind): Pick<RunConfig, 'agent' | 'agentEnv' | 'agentTimeoutMs' | 'agentNetwork' | 'agentNetworkAllow'> {
  const given = ['agent', 'agent-env', 'agent-timeout', 'agent-network', 'agent-host-network', 'agent-network-allow'].filter((name) => flags[name] !== undefined);
  if (proposer !== 'agent' && (proposer !== 'mixed' || !given.length)) {
    if (given.length) throw new UserError(`--${given[0]} applies to the agent proposer only (this run uses ${proposer}; add --proposer agent)`);
    return {};
  }
  const agent = (flags.agent as string | undefined)?.trim();
  if (!agent) throw new UserError(`--proposer ${proposer} needs the agent's command: --agent "CMD" (e.g. --agent "claude -p"; docs/proposers.md has recipes)`);
  const names = ((flags['agent-env'] as unknown as string[] | undefined) ?? []).flatMap((n) => n.split(',')).map((n) => n.trim()).filter(Boolean);
  const bad = names.find((n) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(n));
  if (bad !== undefined) throw new UserError(`--agent-env: "${bad}" is not a variable name (give the name, e.g. ANTHROPIC_API_KEY, never its value)`);
  const timeout = flags['agent-timeout'] as string | undefined;
  const agentTimeoutMs = timeout === undefined ? undefined : parseDuration('--agent-timeout', timeout);
  if (agentTimeoutMs !== undefined && agentTimeoutMs > MAX_AGENT_TIMEOUT_MS) throw new UserError(`--agent-timeout ${timeout} is over the most an agent may take, ${formatDuration(MAX_AGENT_TIMEOUT_MS)}`);
  if (flags['agent-network'] && flags['agent-host-network']) throw new UserError('--agent-network and --agent-host-network exclude each other');
  const agentNetwork = flags['agent-network'] ? 'egress' : flags['agent-host-network'] ? 'host' : undefined;
  const allow = parseCidrs('--agent-network-allow', flags['agent-network-allow'] as string | undefined, agentNetwork === 'egress' ? null : '--agent-network');
  return { agent, agentEnv: names.length ? [...new Set(names)] : undefined, agentTimeoutMs, agentNetwork, ...(allow.length ? { agentNetworkAllow: allow } : {}) };
}

export function uiLink(uiBase: string, namespace: string, tag: string): string {
  return `${uiBase}/namespaces/${namespace}/workflows/${workflowIdFor(tag)}`;
}

/** What `start` prints: the run, its proposer, its time per experiment, how it ends, where to watch it. */
export function startSummary(
  workflowId: string,
  config: RunConfig,
  why: string,
  uiBase: string | null,
  namespace: string,
): string {
  const ends =
    config.maxExperiments !== undefined && config.untilMs !== undefined
      ? `after ${config.maxExperiments} experiments or at ${clockTime(config.untilMs)}, whichever comes first`
      : config.maxExperiments !== undefined
        ? `after ${config.maxExperiments} experiments (the baseline counts as one)`
        : config.untilMs !== undefined
          ? `at ${clockTime(config.untilMs)} (nothing starts that could not finish by then)`
          : `never by itself: \`npx autoresearch stop ${config.tag}\` ends it (or start with --max-experiments N or --until 07:30)`;
  const lanes = config.parallel === 1 ? '1 experiment' : `${config.parallel} experiments`;
  const limit = formatDuration(config.timeoutMs);
  const ui = uiBase ? uiLink(uiBase, namespace, config.tag) : "set AUTORESEARCH_UI to your Web UI's address (e.g. http://host:8233) for a link";
  return [
    `started:  ${workflowId}`,
    `proposer: ${config.proposer} (${why})${config.agent ? `: ${config.agent}` : ''}`,
    `training: ${config.budgetSeconds}s of training per experiment, stopped at ${limit} (--timeout); ${lanes} at a time`,
    `ends:     ${ends}`,
    `web ui:   ${ui}`,
  ].join('\n');
}

function clockTime(ms: number): string {
  const at = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} ${pad(at.getHours())}:${pad(at.getMinutes())} (local time)`;
}

const CLI_TYPE: Record<string, string> = { KEYWORD: 'Keyword', DOUBLE: 'Double', INT: 'Int' };

/**
 * The server refuses a start whose search attributes the namespace lacks: name the missing ones and
 * the two ways to register them (our worker does it at start; the Temporal CLI does it by hand).
 */
async function missingSearchAttributes(client: Client, err: unknown): Promise<UserError | null> {
  const text = `${(err as Error).message} ${((err as Error).cause as Error | undefined)?.message ?? ''}`;
  if (!/no mapping defined for search attribute|search attribute .* (is not defined|not found)/i.test(text)) return null;
  const namespace = client.options.namespace;
  const known = await client.connection.operatorService
    .listSearchAttributes({ namespace })
    .then(({ customAttributes }) => new Set(Object.keys(customAttributes ?? {})), () => new Set<string>());
  const missing = ALL_SEARCH_ATTRIBUTES.filter((key) => !known.has(key.name));
  const commands = Object.entries(CLI_TYPE)
    .map(([type, cliType]) => [cliType, missing.filter((key) => key.type === type).map((key) => key.name)] as const)
    .filter(([, names]) => names.length > 0)
    .map(([cliType, names]) => {
      const flags = names.map((n) => `--name ${n}`).join(' ');
      return `temporal operator search-attribute create --namespace ${namespace} --type ${cliType} ${flags}`;
    });
  return new UserError(
    `namespace ${namespace} lacks the search attributes ${missing.map((k) => k.name).join(', ')}: ` +
      `start \`npx autoresearch worker\` once (it registers them), or run \`${commands.join(' && ')}\``,
  );
}

/** Checks the repo before reaching the server, so a repo mistake is reported as such. */
export async function startRun(connect: () => Promise<Client>, config: RunConfig): Promise<string> {
  await checkRepo(config.repo, config.editable);
  if (await branchOf(config.repo, config.tag)) {
    throw new UserError(`tag ${config.tag} was used before (branch autoresearch/${config.tag} exists in ${config.repo}); choose a new tag`);
  }
  const workflowId = workflowIdFor(config.tag);
  const client = await connect();
  try {
    await client.workflow.start(researchWorkflow, {
      workflowId,
      taskQueue: CONTROL_QUEUE,
      args: [config],
      typedSearchAttributes: [{ key: RESEARCH_TAG, value: config.tag }],
      memo: { repo: config.repo, proposer: config.proposer, bestCommit: null },
      staticSummary: `autoresearch ${config.tag}: ${config.proposer} proposer, ${config.budgetSeconds}s budget`,
      staticDetails: `repo: ${config.repo}\n\ncommand: \`${config.command}\`\n\neditable: ${config.editable.join(', ')}`,
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) throw new UserError(`tag ${config.tag} is already running (${workflowId})`);
    throw (await missingSearchAttributes(client, err)) ?? err;
  }
  return workflowId;
}

/** The handle of a run that is still going, or a one-line error. */
async function runningHandle(client: Client, tag: string) {
  const handle = client.workflow.getHandle(workflowIdFor(parseTag(tag)));
  try {
    const { status } = await handle.describe();
    if (status.name !== 'RUNNING') throw new UserError(`run ${tag} is not running (it is ${status.name.toLowerCase()})`);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new UserError(`no run with tag ${tag}`);
    throw err;
  }
  return handle;
}

export async function pauseRun(client: Client, tag: string): Promise<void> {
  await (await runningHandle(client, tag)).signal(pauseSignal);
}

export async function resumeRun(client: Client, tag: string): Promise<void> {
  await (await runningHandle(client, tag)).signal(resumeSignal);
}

export async function stopRun(client: Client, tag: string, cancelInFlight: boolean): Promise<void> {
  await (await runningHandle(client, tag)).signal(stopSignal, { cancelInFlight, reason: cancelInFlight ? 'stopped by request (in-flight cancelled)' : 'stopped by request' });
}
