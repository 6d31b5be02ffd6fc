// The GPU worker's process handling: exit codes, hard timeouts and cancellation that kill the whole
// process tree, bounded memory however much a command prints, and a training environment without secrets.
import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCommand } from '../gpu-worker/runner';
import { BOX_HOME } from '../gpu-worker/sandbox';
import { trainingEnv, type Slot } from '../gpu-worker/training';

const ENV = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' };

function scratch(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'autoresearch-runner-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Proc {
  pid: number;
  pgid: number;
  stat: string;
  args: string;
}

function processes(): Proc[] {
  const out = spawnSync('ps', ['-eo', 'pid=,pgid=,stat=,args='], { encoding: 'utf8' }).stdout;
  return out
    .split('\n')
    .map((line) => /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ pid: Number(m[1]), pgid: Number(m[2]), stat: m[3], args: m[4] }));
}

/** Running processes (zombies count as dead: they only wait for their new parent to reap them). */
function living(filter: (p: Proc) => boolean): Proc[] {
  return processes().filter((p) => filter(p) && !p.stat.startsWith('Z'));
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  return living((p) => p.pid === pid).length > 0;
}

async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** A command that records its process group and the pids of two sleeps, one of them in the background. */
function treeCommand(dir: string): string {
  const pids = join(dir, 'pids');
  return `ps -o pgid= -p $$ > ${dir}/pgid; echo $$ >> ${pids}; sleep 300 & echo $! >> ${pids}; (sleep 300; true) & echo $! >> ${pids}; exec sleep 300`;
}

function readTree(dir: string): { pgid: number; pids: number[] } {
  return {
    pgid: Number(readFileSync(join(dir, 'pgid'), 'utf8').trim()),
    pids: readFileSync(join(dir, 'pids'), 'utf8').trim().split('\n').map(Number),
  };
}

async function assertTreeGone(dir: string): Promise<void> {
  const { pgid, pids } = readTree(dir);
  assert.ok(pgid > 1 && pgid !== process.pid, `the command runs in its own process group (${pgid})`);
  assert.equal(pids.length, 3);
  await until(() => living((p) => p.pgid === pgid).length === 0 && pids.every((pid) => !pidExists(pid)), 3_000, `process group ${pgid} to die`);
  for (const pid of pids) assert.equal(pidExists(pid), false, `pid ${pid} survived`);
  assert.deepEqual(living((p) => p.pgid === pgid), []);
}

describe('runCommand', () => {
  test("reports the command's exit code and output", async (t) => {
    const dir = scratch(t);
    const ok = await runCommand('echo hello; echo oops >&2', { cwd: dir, env: ENV, timeoutMs: 10_000 });
    assert.equal(ok.exitCode, 0);
    assert.equal(ok.timedOut, false);
    assert.equal(ok.aborted, false);
    assert.match(ok.tail, /hello\n/);
    assert.match(ok.tail, /oops\n/, 'stderr is part of the tail');
    const failed = await runCommand('echo partial; exit 7', { cwd: dir, env: ENV, timeoutMs: 10_000 });
    assert.equal(failed.exitCode, 7);
    assert.equal(failed.timedOut, false);
  });

  test('runs in the given directory with exactly the given environment', async (t) => {
    const dir = scratch(t);
    process.env.SECRET_FOR_TEST = 'leaked';
    t.after(() => delete process.env.SECRET_FOR_TEST);
    const out = await runCommand('pwd; echo "budget=$AUTORESEARCH_TIME_BUDGET"; echo "secret=${SECRET_FOR_TEST:-unset}"', {
      cwd: dir,
      env: { ...ENV, AUTORESEARCH_TIME_BUDGET: '42' },
      timeoutMs: 10_000,
    });
    assert.equal(out.exitCode, 0);
    assert.match(out.tail, new RegExp(`^${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\n`));
    assert.match(out.tail, /budget=42\n/);
    assert.match(out.tail, /secret=unset\n/);
  });

  test('a command that outlives timeoutMs is reported timedOut and its whole process group is killed', async (t) => {
    const dir = scratch(t);
    const started = Date.now();
    const outcome = await runCommand(treeCommand(dir), { cwd: dir, env: ENV, timeoutMs: 2_000 });
    const elapsed = Date.now() - started;
    assert.equal(outcome.timedOut, true);
    assert.equal(outcome.aborted, false);
    assert.notEqual(outcome.exitCode, 0);
    assert.ok(elapsed >= 1_900 && elapsed < 10_000, `returned after ${elapsed}ms`);
    assert.ok(outcome.seconds >= 1.9 && outcome.seconds < 10, `seconds ${outcome.seconds}`);
    await assertTreeGone(dir);
  });

  test('aborting the signal kills the whole process group the same way', async (t) => {
    const dir = scratch(t);
    const controller = new AbortController();
    const running = runCommand(treeCommand(dir), { cwd: dir, env: ENV, timeoutMs: 60_000, signal: controller.signal });
    await until(() => existsSync(join(dir, 'pids')) && readFileSync(join(dir, 'pids'), 'utf8').trim().split('\n').length === 3, 5_000, 'the command to start');
    const { pgid } = readTree(dir);
    assert.ok(living((p) => p.pgid === pgid).length >= 3, 'the tree is running before the abort');
    const abortedAt = Date.now();
    controller.abort();
    const outcome = await running;
    assert.ok(Date.now() - abortedAt < 3_000, 'the outcome arrives promptly after the abort');
    assert.equal(outcome.aborted, true);
    assert.equal(outcome.timedOut, false);
    await assertTreeGone(dir);
  });

  test('an already aborted signal kills the command at once', async (t) => {
    const dir = scratch(t);
    const controller = new AbortController();
    controller.abort();
    const started = Date.now();
    const outcome = await runCommand('sleep 300', { cwd: dir, env: ENV, timeoutMs: 60_000, signal: controller.signal });
    assert.equal(outcome.aborted, true);
    assert.ok(Date.now() - started < 3_000);
  });

  test('a background process left behind by a finished command is killed, and does not hold up the result', async (t) => {
    const dir = scratch(t);
    const started = Date.now();
    const outcome = await runCommand(`sleep 300 & echo $! > ${dir}/leftover; echo done`, { cwd: dir, env: ENV, timeoutMs: 30_000 });
    assert.equal(outcome.exitCode, 0);
    assert.equal(outcome.timedOut, false);
    assert.ok(Date.now() - started < 5_000, 'the result does not wait for the leftover');
    const leftover = Number(readFileSync(join(dir, 'leftover'), 'utf8'));
    await until(() => !pidExists(leftover), 3_000, `leftover ${leftover} to die`);
  });

  test('200 MB of output keeps a tail of at most 64 KiB and costs the worker far less memory', async (t) => {
    const dir = scratch(t);
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
    let lines = 0;
    let longest = 0;
    try {
      const outcome = await runCommand("head -c 200000000 /dev/zero | tr '\\0' 'x'; printf '\\n---\\nval_bpb: 0.5\\n'", {
        cwd: dir,
        env: ENV,
        timeoutMs: 60_000,
        onLine: (line) => {
          lines++;
          longest = Math.max(longest, line.length);
        },
      });
      peak = Math.max(peak, process.memoryUsage().rss);
      assert.equal(outcome.exitCode, 0);
      assert.ok(outcome.tail.length <= 64 * 1024, `tail of ${outcome.tail.length} chars`);
      assert.ok(outcome.tail.endsWith('xxx\n---\nval_bpb: 0.5\n'), 'the tail is the end of the output');
      assert.equal(lines, 3, 'one very long line, then the summary');
      assert.ok(longest <= 4096, `a progress line is cut to a bounded length (${longest})`);
    } finally {
      clearInterval(sampler);
    }
    const growth = peak - before;
    assert.ok(growth < 100 * 1024 * 1024, `RSS grew by ${Math.round(growth / 1024 / 1024)} MB`);
  });

  test('onLine receives progress lines separated by \\r, \\n and \\r\\n, and a last line without an end', async (t) => {
    const dir = scratch(t);
    const lines: string[] = [];
    const outcome = await runCommand("printf 'step 00001 (10.0%%) | loss: 3.0\\rstep 00002 (20.0%%) | loss: 2.5\\r'; printf 'warming up\\r\\nok\\n'; printf 'last'", {
      cwd: dir,
      env: ENV,
      timeoutMs: 10_000,
      onLine: (line) => lines.push(line),
    });
    assert.equal(outcome.exitCode, 0);
    assert.deepEqual(lines, ['step 00001 (10.0%) | loss: 3.0', 'step 00002 (20.0%) | loss: 2.5', 'warming up', 'ok', 'last']);
  });
});

describe('streams', () => {
  test('an unfinished stdout line interleaved with stderr, and a character split across writes, arrive whole', async (t) => {
    const dir = scratch(t);
    const lines: string[] = [];
    const outcome = await runCommand("printf 'step 00001 (1'; sleep 0.2; printf 'warning\\n' >&2; sleep 0.2; printf '0.0%%) | loss: 2.0\\n'; printf '\\xc3'; sleep 0.2; printf '\\xa9t\\xc3\\xa9\\n'", {
      cwd: dir,
      env: ENV,
      timeoutMs: 10_000,
      onLine: (line) => lines.push(line),
    });
    assert.equal(outcome.exitCode, 0);
    assert.deepEqual(lines.sort(), ['step 00001 (10.0%) | loss: 2.0', 'warning', 'été'].sort());
    assert.ok(!outcome.tail.includes('\ufffd'), 'no replacement character in the tail');
  });
});

describe('a box around the command', () => {
  test('the command runs inside the argv given as box, with what the box adds', async (t) => {
    const dir = scratch(t);
    const out = await runCommand('echo "inside=$INSIDE_THE_BOX"', { cwd: dir, env: ENV, timeoutMs: 10_000, box: ['env', 'INSIDE_THE_BOX=yes'] });
    assert.equal(out.exitCode, 0);
    assert.match(out.tail, /^inside=yes$/m);
  });

  test('a boxed command past its timeout is still killed with its whole group', async (t) => {
    const dir = scratch(t);
    const started = Date.now();
    const outcome = await runCommand(treeCommand(dir), { cwd: dir, env: ENV, timeoutMs: 1_000, box: ['env', 'INSIDE_THE_BOX=yes'] });
    assert.equal(outcome.timedOut, true);
    assert.ok(Date.now() - started < 5_000);
    await assertTreeGone(dir);
  });
});

describe('trainingEnv', () => {
  const from = {
    OPENAI_API_KEY: 'sk-test-openai',
    AWS_SECRET_ACCESS_KEY: 'aws-test-secret',
    TEMPORAL_API_KEY: 'temporal-test-key',
    GITHUB_TOKEN: 'ghp-test-token',
    PATH: ENV.PATH,
    HOME: '/home/researcher',
    TMPDIR: '/var/tmp/researcher',
  };
  const slot: Slot = { name: 'host-slot1', checkout: '/srv/checkout', cudaVisibleDevices: '1', pathPrefix: '/opt/autoresearch/venv/bin' };
  const input = { experimentId: 'nov27-12', budgetSeconds: 240, seed: 3 };
  const SECRETS = ['sk-test-openai', 'aws-test-secret', 'temporal-test-key', 'ghp-test-token'];

  test('passes no secrets, only what a training command needs', () => {
    const env = trainingEnv(slot, input, from);
    for (const key of ['OPENAI_API_KEY', 'AWS_SECRET_ACCESS_KEY', 'TEMPORAL_API_KEY', 'GITHUB_TOKEN']) assert.equal(env[key], undefined, key);
    for (const secret of SECRETS) assert.ok(!Object.values(env).includes(secret));
    assert.equal(env.PATH, `/opt/autoresearch/venv/bin:${ENV.PATH}`, "the slot's bin directory comes first");
    assert.equal(env.HOME, BOX_HOME, "the box's own empty HOME, not the worker's");
    assert.equal(env.TMPDIR, undefined, "the box's private /tmp, not the worker's TMPDIR");
    assert.equal(env.AUTORESEARCH_TIME_BUDGET, '240');
    assert.equal(env.AUTORESEARCH_SEED, '3');
    assert.equal(env.AUTORESEARCH_EXPERIMENT_ID, 'nov27-12');
    assert.equal(env.CUDA_VISIBLE_DEVICES, '1');
  });

  test('without the sandbox (--no-sandbox) the command keeps the worker\'s HOME and TMPDIR, and still no secret', () => {
    const env = trainingEnv({ ...slot, sandbox: false }, input, from);
    assert.equal(env.HOME, '/home/researcher');
    assert.equal(env.TMPDIR, '/var/tmp/researcher');
    for (const secret of SECRETS) assert.ok(!Object.values(env).includes(secret));
  });

  test('a slot without a GPU hides every GPU, and a slot without a prefix keeps PATH as is', () => {
    const env = trainingEnv({ name: 'host-slot0', checkout: '/srv/checkout' }, input, from);
    assert.equal(env.CUDA_VISIBLE_DEVICES, '');
    assert.equal(env.PATH, ENV.PATH);
  });

  test('a real child started with it sees none of the secrets', async (t) => {
    const dir = scratch(t);
    const env = trainingEnv(slot, input, from);
    const outcome = await runCommand('env', { cwd: dir, env, timeoutMs: 10_000 });
    assert.equal(outcome.exitCode, 0);
    for (const secret of [...SECRETS, 'OPENAI_API_KEY', 'AWS_SECRET_ACCESS_KEY', 'TEMPORAL_API_KEY']) {
      assert.ok(!outcome.tail.includes(secret), `${secret} leaked into the training command`);
    }
    assert.match(outcome.tail, /^AUTORESEARCH_EXPERIMENT_ID=nov27-12$/m);
    assert.match(outcome.tail, /^AUTORESEARCH_TIME_BUDGET=240$/m);
    assert.match(outcome.tail, /^CUDA_VISIBLE_DEVICES=1$/m);
    assert.match(outcome.tail, /^PATH=\/opt\/autoresearch\/venv\/bin:/m);
  });
});
