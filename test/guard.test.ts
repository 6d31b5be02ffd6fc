// The worker-death guarantee: when the GPU worker process dies, even by SIGKILL, which it cannot
// intercept, the training command it started dies with it instead of holding the GPU as an orphan.
import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { bwrapArgs, systemDirs } from '../gpu-worker/sandbox';

const ROOT = join(__dirname, '..');
const RUNNER = join(ROOT, 'gpu-worker', 'runner');

/** Running processes of a group (zombies count as dead: they only wait to be reaped). */
function livingInGroup(pgid: number): number[] {
  const out = spawnSync('ps', ['-eo', 'pid=,pgid=,stat='], { encoding: 'utf8' }).stdout;
  return out
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter(([pid, group, stat]) => pid && Number(group) === pgid && !stat.startsWith('Z'))
    .map(([pid]) => Number(pid));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = spawnSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).stdout.trim();
  return stat !== '' && !stat.startsWith('Z');
}

function pgidOf(pid: number): number {
  return Number(spawnSync('ps', ['-o', 'pgid=', '-p', String(pid)], { encoding: 'utf8' }).stdout.trim());
}

async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms}ms waiting for ${what}`);
    await sleep(25);
  }
}

/**
 * Starts a worker-like Node process (through tsx, from the repo root) that runs `command` with
 * runCommand and a long timeout, and waits until the command has written `lines` pids to pidFile.
 */
async function startWorker(t: TestContext, command: (pidFile: string) => string, lines: number, boxed = false): Promise<{ worker: ChildProcess; pids: number[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'autoresearch-guard-'));
  const pidFile = join(dir, 'pids');
  const script = join(dir, 'worker.ts');
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  const box = boxed ? ['bwrap', ...bwrapArgs({ system: systemDirs(), scratch: dir, hide: [], private: ['/tmp'], readOnly: [], aliases: [], devices: [], network: 'none', env })] : undefined;
  writeFileSync(
    script,
    [
      `import { runCommand } from ${JSON.stringify(RUNNER)};`,
      `runCommand(${JSON.stringify(command(pidFile))}, { cwd: ${JSON.stringify(dir)}, env: ${JSON.stringify(env)}, box: ${JSON.stringify(box)}, timeoutMs: 600_000 })`,
      `  .then((outcome) => console.log(JSON.stringify(outcome)));`,
      '',
    ].join('\n'),
  );
  const worker = spawn(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  worker.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  t.after(() => {
    if (worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const ready = () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim().split('\n').length >= lines;
  await until(() => {
    if (worker.exitCode !== null) assert.fail(`the worker exited early (${worker.exitCode}): ${stderr}`);
    return ready();
  }, 20_000, 'the training command to start');
  return { worker, pids: readFileSync(pidFile, 'utf8').trim().split('\n').map(Number) };
}

async function killWorker(worker: ChildProcess): Promise<void> {
  const exited = new Promise((done) => worker.once('exit', done));
  worker.kill('SIGKILL');
  await exited;
}

describe('the guard', () => {
  test('a SIGKILLed worker takes its training command with it within seconds', async (t) => {
    const { worker, pids } = await startWorker(t, (pidFile) => `echo $$ > ${pidFile}; sleep 300`, 1);
    const [training] = pids;
    const pgid = pgidOf(training);
    assert.ok(alive(training), 'the training process runs while the worker lives');
    assert.notEqual(pgid, pgidOf(worker.pid!), 'the command has its own process group');
    await sleep(300);
    assert.ok(alive(training), 'and keeps running: nothing but the worker death ends it');

    await killWorker(worker);
    await until(() => !alive(training), 3_000, `training process ${training} to die after the worker`);
    await until(() => livingInGroup(pgid).length === 0, 1_000, `process group ${pgid} to be empty`);
  });

  test('background processes the command started die with it too', async (t) => {
    const command = (pidFile: string) => `echo $$ >> ${pidFile}; sleep 300 & echo $! >> ${pidFile}; (sleep 300; true) & echo $! >> ${pidFile}; wait`;
    const { worker, pids } = await startWorker(t, command, 3);
    const pgid = pgidOf(pids[0]);
    for (const pid of pids) assert.ok(alive(pid), `pid ${pid} runs before the worker dies`);
    assert.ok(livingInGroup(pgid).length >= 4, 'the guard, the command, two background jobs and a grandchild');

    await killWorker(worker);
    await until(() => pids.every((pid) => !alive(pid)) && livingInGroup(pgid).length === 0, 3_000, `every process of group ${pgid} to die`);
  });

  test('a SIGKILLed worker takes its boxed training with it, and what that training setsid\'d or double-forked', async (t) => {
    const marker = `autoresearch-guard-boxed-${process.pid}`;
    const hostPids = () => {
      const out = spawnSync('ps', ['-eo', 'pid=,stat=,args='], { encoding: 'utf8' }).stdout;
      return [...out.matchAll(new RegExp(`^\\s*(\\d+)\\s+[^Z\\s]\\S*\\s+${marker}`, 'gm'))].map((m) => Number(m[1]));
    };
    // Inside the box pids are the box's own, so the host finds the processes by their argv[0]
    const command = (pidFile: string) =>
      `setsid bash -c 'exec -a ${marker} sleep 300' </dev/null >/dev/null 2>&1 & ( ( exec -a ${marker} sleep 300 </dev/null >/dev/null 2>&1 & ) & ); ` +
      `sleep 0.2; echo ready > ${pidFile}; exec -a ${marker} sleep 300`;
    const { worker } = await startWorker(t, command, 1, true);
    await until(() => hostPids().length === 3, 5_000, 'three boxed sleepers');
    const pids = hostPids();
    await killWorker(worker);
    await until(() => pids.every((pid) => !alive(pid)), 3_000, `boxed processes ${pids} to die after the worker`);
  });
});
