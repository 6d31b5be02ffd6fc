// Runs a shell command as its own process group with a hard timeout, streaming its output to a
// progress callback and keeping only a bounded tail, so gigabytes of output cost no memory.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type { Readable, Writable } from 'node:stream';
import { BLOCK_FD, connectEgress, INFO_FD, type Egress } from './egress';

const GUARD = join(__dirname, 'guard.sh');
const TAIL_CHARS = 64 * 1024; // kept in memory; the summary block is read from here
const LINE_CHARS = 4096; // longer progress "lines" are cut: they are not progress lines

export interface RunOptions {
  cwd: string;
  env: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal; // aborting kills the process group
  box?: string[]; // argv the command runs inside, e.g. bwrap and its arguments (gpu-worker/sandbox.ts)
  filter?: string; // a file the command gets open on FILTER_FD: the box's syscall filter, for bwrap --seccomp
  egress?: Egress; // for a box made with egressArgs(): its uplink is set up while it waits
  onLine?: (line: string) => void;
}

export interface RunOutcome {
  exitCode: number | null;
  timedOut: boolean;
  aborted: boolean;
  seconds: number;
  tail: string;
}

export function runCommand(command: string, opts: RunOptions): Promise<RunOutcome> {
  const started = Date.now();
  const filter = opts.filter === undefined ? null : openSync(opts.filter, 'r');
  // detached: the guard leads a new process group, so one kill reaches everything the command started.
  // fds 3 (the guard's own), FILTER_FD, INFO_FD and BLOCK_FD, as far as this box needs them
  const extra: ('ignore' | 'pipe' | number)[] = ['ignore', filter ?? 'ignore', ...(opts.egress ? ['pipe' as const, 'pipe' as const] : [])];
  const child = spawn('bash', [GUARD, command, ...(opts.box ?? [])], {
    cwd: opts.cwd,
    env: opts.env,
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe', ...(filter === null && !opts.egress ? [] : extra)],
  });
  if (filter !== null) closeSync(filter); // the child has its own copy; bwrap closes it once read
  let tail = '';
  const pipes = child.stdio as unknown as (Readable & Writable)[];
  const stopEgress = opts.egress
    ? connectEgress(pipes[INFO_FD], pipes[BLOCK_FD], opts.egress, (line) => (tail += `${line}\n`))
    : () => {};
  let timedOut = false;
  let aborted = false;
  const killGroup = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  // One decoder and one unfinished line per stream: a character or a line split across chunks, or
  // interleaved with the other stream, still arrives whole.
  const streams = [child.stdout!, child.stderr!].map((stream) => {
    const state = { decoder: new StringDecoder('utf8'), partial: '' };
    stream.on('data', (chunk: Buffer) => {
      const text = state.decoder.write(chunk);
      tail = (tail + text).slice(-TAIL_CHARS);
      const pieces = (state.partial + text).split(/\r\n|\r|\n/);
      state.partial = pieces.pop()!.slice(-LINE_CHARS);
      for (const line of pieces) opts.onLine?.(line.slice(0, LINE_CHARS));
    });
    return state;
  });
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup();
  }, opts.timeoutMs);
  const onAbort = () => {
    aborted = true;
    killGroup();
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  if (opts.signal?.aborted) onAbort();
  return new Promise((done, fail) => {
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      killGroup(); // leftovers the command left behind in its group
      stopEgress();
      child.stdin!.destroy();
      for (const { partial } of streams) if (partial) opts.onLine?.(partial);
      done({ exitCode: code, timedOut, aborted, seconds: (Date.now() - started) / 1000, tail });
    });
  });
}
