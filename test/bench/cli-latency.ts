// How long a user waits for a command (issue 12.12): wall time of whole processes, as a shell sees it.
import { spawn } from 'node:child_process';
import { CLI, ROOT } from '../helpers';
import { median } from './figures';

export interface Latency {
  what: string;
  medianSeconds: number;
  failures: number; // runs that exited non-zero: their time is not a command's answer
}

/** Asynchronous on purpose: the bench's own control worker must stay free to answer `status`'s query. */
function timed(args: string[], env: NodeJS.ProcessEnv): Promise<{ seconds: number; ok: boolean }> {
  const started = process.hrtime.bigint();
  return new Promise((done) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: 'ignore' });
    child.on('close', (code) => done({ seconds: Number(process.hrtime.bigint() - started) / 1e9, ok: code === 0 }));
  });
}

async function measure(what: string, args: string[], env: NodeJS.ProcessEnv, runs: number): Promise<Latency> {
  const times = [];
  for (let i = 0; i < runs; i++) times.push(await timed(args, env));
  const ok = times.filter((t) => t.ok);
  return { what, medianSeconds: median(ok.map((t) => t.seconds)), failures: times.length - ok.length };
}

/** `node -e 0` (the floor), `autoresearch --help`, and `status --json TAG` against a live run. */
export async function cliLatency(temporalAddress: string, tag: string, runs: number): Promise<Latency[]> {
  const server = { TEMPORAL_ADDRESS: temporalAddress };
  return [
    await measure('node -e 0', ['-e', '0'], {}, runs),
    await measure('autoresearch --help', [CLI, '--help'], {}, runs),
    await measure(`autoresearch status --json ${tag}`, [CLI, 'status', '--json', tag], server, runs),
  ];
}
