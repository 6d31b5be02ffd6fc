// The agent proposer: a coding agent (Claude Code, Codex, aider, OpenCode, or any command) edits a
// checkout of the best in a box like a training's, without the GPU. The candidate is what it changed
// in the editable files; changes elsewhere are dropped and named. The agent sees the prompt, its
// checkout and the variables the user named, and nothing else of the host.
import { Context } from '@temporalio/activity';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { boxFiles } from '../gpu-worker/files';
import { defaultLimits, limitPrefix, tmpfsBytes } from '../gpu-worker/limits';
import { runCommand, type RunOutcome } from '../gpu-worker/runner';
import {
  boxCommand, boxEnv, buildSyscallFilter, cacheDir, egressProblem, handToBox, sandboxProblem,
} from '../gpu-worker/sandbox';
import { newScratch, removeScratch, SCRATCH_ROOT, workerScratch } from '../gpu-worker/scratch';
import type { ExperimentRecord, Proposal, RunConfig } from '../workflows/types';
import { describeChange, InvalidAnswer, validateCandidate } from './edits';
import { gitBlobId } from './harness';
import { treeEntries } from './git';
import { crashLog, researchBrief } from './llm';

export const DEFAULT_AGENT_TIMEOUT_MS = 10 * 60_000;
export const PROMPT_FILE_ENV = 'AUTORESEARCH_PROMPT_FILE'; // where the agent finds its prompt (also on stdin)
export const PROPOSAL_ENV = 'AUTORESEARCH_PROPOSAL'; // the proposal's number in the night
const HEARTBEAT_EVERY_MS = 5_000; // well inside the proposer's 30 s heartbeat timeout
const GIT_TIMEOUT_MS = 30_000; // reading the agent's last commit, in its box
const REASON_CHARS = 300;
const NAMED_FILES = 5; // dropped files named in a row's reason; the rest counted
const AGENT_NAME = 'autoresearch agent'; // the checkout's git identity: the agent's commits need one

export interface AgentContext {
  config: RunConfig;
  key: number;
  best: { commit: string; files: Record<string, string> };
  records: ExperimentRecord[];
  inFlight: string[];
  crashed?: ExperimentRecord;
}

const execFileAsync = promisify(execFile);
const gitIn = (dir: string, ...args: string[]) => execFileAsync('git', args, { cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });

/** The prompt: how the agent works here, then what every proposer is told. */
export async function agentPrompt(ctx: AgentContext): Promise<string> {
  const { config } = ctx;
  const rules = [
    '# Your task',
    'You are an autonomous ML researcher. This folder is a git checkout of the best version so far. Make one',
    'experiment: change the code to lower val_bpb (validation bits per byte). After you exit, the harness trains',
    'your version for a fixed time budget and keeps it only if it beats the best.',
    `- Edit only ${config.editable.join(', ')}: changes to any other file are dropped.`,
    '- Commit your change with a one-line message saying what you changed and why, or leave it uncommitted and',
    '  end your output with that line.',
    "- Quick checks are fine; don't train for long, the harness does that.",
  ].join('\n');
  const parts = [rules, ...(await researchBrief(config.repo, ctx.records, ctx.inFlight))];
  if (ctx.crashed) parts.push(crashLog(ctx.crashed));
  return `${parts.join('\n\n')}\n`;
}

/** Tokens the agent reported, where it did: Claude's and OpenAI's JSON usage, codex's and aider's summary lines. */
export function reportedTokens(output: string): number {
  let tokens = 0;
  for (const line of output.split('\n')) {
    const text = line.trim();
    if (text.startsWith('{')) {
      try {
        const usage = (JSON.parse(text) as { usage?: Record<string, unknown> }).usage;
        const n = (k: string) => (typeof usage?.[k] === 'number' ? (usage[k] as number) : 0);
        const sum = n('input_tokens') + n('output_tokens') + n('cache_creation_input_tokens') + n('cache_read_input_tokens');
        const found = sum || n('total_tokens') || n('prompt_tokens') + n('completion_tokens');
        if (found) tokens = found;
      } catch {
        // not JSON after all
      }
    }
    const used = /tokens used:?\s*([\d,]+)/i.exec(text);
    if (used) tokens = Number(used[1].replace(/,/g, ''));
    const aider = /Tokens: ([\d.]+)(k?) sent, ([\d.]+)(k?) received/.exec(text);
    if (aider) tokens = Math.round(Number(aider[1]) * (aider[2] ? 1000 : 1) + Number(aider[3]) * (aider[4] ? 1000 : 1));
  }
  return tokens;
}

/** The agent's last line of output; from a JSON result (claude -p --output-format json), its text's last line. */
export function lastLine(output: string): string | null {
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  const last = lines.at(-1);
  if (!last) return null;
  if (last.startsWith('{')) {
    try {
      const result = (JSON.parse(last) as { result?: unknown }).result;
      if (typeof result === 'string') return lastLine(result);
    } catch {
      // a line that only looks like JSON
    }
  }
  return last;
}

let filter: Promise<string | null> | undefined;

/** The box's syscall filter, built once per control worker (null: no python3-seccomp, boxes run unfiltered). */
function syscallFilter(): Promise<string | null> {
  filter ??= workerScratch().then(async (dir) => {
    const path = join(dir, 'agent-seccomp.bpf');
    return (await buildSyscallFilter(path)) === null ? path : null;
  });
  return filter;
}

/** Every file under `dir` but .git, as relative paths, without following links. */
async function filesUnder(dir: string, prefix = ''): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(join(dir, prefix), { withFileTypes: true }).catch(() => [])) {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (path === '.git' || entry.name === '__pycache__') continue; // git's own; what a quick check's Python left
    if (entry.isDirectory()) found.push(...(await filesUnder(dir, path)));
    else found.push(path);
  }
  return found;
}

/** What the agent changed in the checkout against the best: the editable files' new contents, and what else it touched. */
async function changesIn(checkout: string, config: RunConfig, best: string): Promise<{ files: Record<string, string>; dropped: string[] } | { problem: string }> {
  const read = boxFiles(checkout);
  const files: Record<string, string> = {};
  for (const path of config.editable) {
    const file = await read(path);
    if (file.kind === 'missing') return { problem: `the agent deleted ${path}` };
    if (file.kind === 'refused') return { problem: `the agent left ${file.why}` };
    files[path] = file.content.toString('utf8');
  }
  const tracked = (await treeEntries(config.repo, best)).filter((e) => !config.editable.includes(e.path));
  const dropped: string[] = [];
  for (const { path, blob } of tracked) {
    const file = await read(path);
    if (file.kind !== 'file' || gitBlobId(file.content) !== blob) dropped.push(path);
  }
  const known = new Set([...config.editable, ...tracked.map((e) => e.path)]);
  dropped.push(...(await filesUnder(checkout)).filter((p) => !known.has(p)));
  return { files, dropped };
}

function named(paths: string[]): string {
  const shown = paths.slice(0, NAMED_FILES).join(', ');
  return paths.length > NAMED_FILES ? `${shown} and ${paths.length - NAMED_FILES} more` : shown;
}

/** Each value of a variable handed to the agent, replaced by its name: nothing it prints carries one onward. */
function redactor(secrets: Record<string, string>): (text: string) => string {
  const pairs = Object.entries(secrets).filter(([, v]) => v.length >= 4);
  return (text) => pairs.reduce((t, [name, value]) => t.split(value).join(`[${name}]`), text);
}

/** The best checked out at `checkout` (one commit, a git identity for the agent's commits), handed to the box's user. */
async function checkOutBest(checkout: string, repo: string, commit: string): Promise<void> {
  await mkdir(checkout);
  await gitIn(checkout, 'init', '--quiet');
  await gitIn(checkout, 'fetch', '--quiet', '--no-tags', '--depth=1', repo, commit);
  await gitIn(checkout, 'checkout', '--quiet', '-B', 'best', 'FETCH_HEAD');
  await gitIn(checkout, 'config', 'user.name', AGENT_NAME);
  await gitIn(checkout, 'config', 'user.email', 'agent@autoresearch.invalid');
  await handToBox(checkout);
}

/** What runs a command in the agent's box: a training's box, without GPUs, with the agent's network. */
async function agentBox(config: RunConfig, checkout: string, brief: string, env: Record<string, string>, pathPrefix?: string) {
  const seccomp = (await syscallFilter()) ?? undefined;
  const limits = defaultLimits(1);
  const boxed = await boxCommand({
    scratch: checkout, scratchRoot: SCRATCH_ROOT, checkout: config.repo, pathPrefix, env, channel: brief, noGpu: true,
    network: config.agentNetwork ?? 'none', networkAllow: config.agentNetworkAllow,
    tmpfsBytes: tmpfsBytes(limits), filtered: seccomp !== undefined,
  }, limitPrefix(limits));
  return (command: string, timeoutMs: number, signal?: AbortSignal): Promise<RunOutcome> =>
    runCommand(command, { cwd: checkout, env, ...boxed, filter: seccomp, timeoutMs, signal });
}

/** One proposal by the agent: check out, prompt, run it in its box, then read what it changed. */
export async function runAgent(ctx: AgentContext, heartbeat: (details: { elapsed: number }) => void, signal?: AbortSignal): Promise<Proposal | 'cancelled'> {
  const { config, key, best } = ctx;
  const fail = (reason: string, tokens = 0, final = false): Proposal => ({ ok: false, reason: reason.slice(0, REASON_CHARS), tokens, ...(final ? { final } : {}) });
  const secrets: Record<string, string> = {};
  for (const name of config.agentEnv ?? []) {
    const value = process.env[name];
    if (value === undefined) return fail(`--agent-env ${name} is not set in the control worker's environment`, 0, true);
    secrets[name] = value;
  }
  const noBox = sandboxProblem() ?? (config.agentNetwork === 'egress' ? egressProblem('--agent-network', '--agent-host-network') : null);
  if (noBox) return fail(`the agent runs in a box, and ${noBox.replace(/, or start the GPU worker .*$/, '')}`, 0, true);
  const redact = redactor(secrets);
  const scratch = await newScratch(`agent-${config.tag}-${key}`);
  const checkout = join(scratch, 'checkout');
  const brief = join(scratch, 'brief'); // the prompt, shown read-only
  try {
    await checkOutBest(checkout, config.repo, best.commit);
    await mkdir(brief, { mode: 0o755 });
    await chmod(brief, 0o755);
    const promptFile = join(brief, 'prompt.md');
    await writeFile(promptFile, await agentPrompt(ctx), { mode: 0o644 });
    const bin = join(cacheDir(), 'python', 'bin'); // the shipped targets' Python: for the agent's quick checks
    const pathPrefix = existsSync(bin) ? bin : undefined;
    const env = { ...boxEnv(pathPrefix, true), ...secrets, [PROMPT_FILE_ENV]: promptFile, [PROPOSAL_ENV]: String(key), CUDA_VISIBLE_DEVICES: '' };
    const inBox = await agentBox(config, checkout, brief, env, pathPrefix);

    const timeoutMs = config.agentTimeoutMs ?? DEFAULT_AGENT_TIMEOUT_MS;
    const started = Date.now();
    const beat = () => heartbeat({ elapsed: Math.round((Date.now() - started) / 1000) });
    const ticker = setInterval(beat, HEARTBEAT_EVERY_MS);
    let run: RunOutcome;
    try {
      beat();
      run = await inBox(`{\n${config.agent}\n} <"$${PROMPT_FILE_ENV}"`, timeoutMs, signal);
    } finally {
      clearInterval(ticker);
    }
    if (run.aborted) return 'cancelled';
    const tokens = reportedTokens(run.tail);
    const said = lastLine(redact(run.tail));
    if (run.timedOut) return fail(`the agent did not finish within --agent-timeout ${Math.round(timeoutMs / 1000)}s: killed`, tokens);
    if (run.exitCode !== 0) return fail(`the agent exited with ${run.exitCode}${said ? `: ${said}` : ''}`, tokens);

    const changed = await changesIn(checkout, config, best.commit);
    if ('problem' in changed) return fail(changed.problem, tokens);
    if (Object.keys(best.files).every((p) => best.files[p] === changed.files[p])) {
      const elsewhere = changed.dropped.length ? ` (only outside them: ${named(changed.dropped)})` : '';
      return fail(`the agent changed nothing in ${config.editable.join(', ')}${elsewhere}`, tokens);
    }
    const leaked = Object.keys(secrets).find((name) => Object.values(changed.files).some((f) => f.includes(secrets[name])));
    if (leaked) return fail(`the agent wrote the value of ${leaked} into the editable files: not taken`, tokens);
    const unchecked = await validateCandidate(best.files, changed.files).then(() => null, (err) => {
      if (err instanceof InvalidAnswer) return err.message.split('\n')[0];
      throw err;
    });
    if (unchecked) return fail(`the agent's change does not check: ${unchecked}`, tokens);

    // git runs only in the box: the agent's .git is its own, and its config could run commands.
    const log = await inBox('git log -1 --format=%H%n%s', GIT_TIMEOUT_MS, signal);
    const [head, subject] = log.exitCode === 0 ? log.tail.trim().split('\n') : [];
    const change = describeChange(best.files, changed.files);
    const description = redact((head && head !== best.commit && subject) || said || change).slice(0, REASON_CHARS);
    const edits = Object.keys(changed.files)
      .filter((p) => changed.files[p] !== best.files[p])
      .map((path) => ({ path, search: '', replace: changed.files[path] }));
    const dropped = changed.dropped.length ? `dropped the agent's changes outside the editable files: ${named(changed.dropped)}` : undefined;
    return { ok: true, description, files: changed.files, edits, change, tokens, ...(dropped ? { dropped } : {}) };
  } finally {
    await removeScratch(scratch);
  }
}

/** The activity: heartbeats while the agent works; cancelling the proposal kills the agent's box. */
export async function proposeWithAgent(ctx: AgentContext): Promise<Proposal> {
  const activity = Context.current();
  const outcome = await runAgent(ctx, (details) => activity.heartbeat(details), activity.cancellationSignal);
  if (outcome === 'cancelled') await activity.cancelled;
  return outcome as Proposal;
}
