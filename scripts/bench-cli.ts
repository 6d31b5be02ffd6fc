// How long a command takes to answer, as a user polling a study all night sees it: each call a
// fresh `node scripts/autoresearch.js` process (what `npx autoresearch` runs, less npx's own start).
import { spawn } from 'node:child_process';
import { join } from 'node:path';

const CLI = join(__dirname, 'autoresearch.js');
const DEFAULT_RUNS = 10;

export interface CliLatency {
  helpMs: number; // median wall time of `autoresearch --help`
  statusMs: number; // median wall time of `autoresearch status TAG --json` against the server
  runs: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** One call of the CLI, in its own process; a failed call is an error, not a figure. Never blocks this process's workers. */
function callCli(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((done, fail) => {
    const started = process.hrtime.bigint();
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', fail);
    child.on('close', (code) => {
      if (code === 0) done(Number(process.hrtime.bigint() - started) / 1e6);
      else fail(new Error(`autoresearch ${args.join(' ')} exited with ${code}: ${stderr.trim()}`));
    });
  });
}

/** Median wall time of `runs` calls of the CLI with `args`, one after another. */
export async function timeCli(args: string[], env: NodeJS.ProcessEnv, runs = DEFAULT_RUNS): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await callCli(args, env));
  return median(times);
}

/**
 * The bench's CLI figure: the median of `runs` calls of `--help` and of `status TAG --json` against
 * the server at `address` (a study with a control worker, so the status query is answered).
 * The first call of each is not counted: it may compile the CLI once after a change to the sources.
 */
export async function benchCliLatency(opts: {
  address: string;
  tag: string;
  runs?: number;
  log?: (line: string) => void;
}): Promise<CliLatency> {
  const runs = opts.runs ?? DEFAULT_RUNS;
  const env = { TEMPORAL_ADDRESS: opts.address };
  await timeCli(['--help'], env, 1);
  const helpMs = await timeCli(['--help'], env, runs);
  await timeCli(['status', opts.tag, '--json'], env, 1);
  const statusMs = await timeCli(['status', opts.tag, '--json'], env, runs);
  opts.log?.(`cli latency: --help ${helpMs.toFixed(0)} ms, status --json ${statusMs.toFixed(0)} ms (median of ${runs})`);
  return { helpMs, statusMs, runs };
}
