// The training box, tried as a hostile candidate would: the real training activity (in Temporal's mock
// activity context, for heartbeats and cancellation), real git checkouts, real bwrap, real processes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MockActivityEnvironment } from '@temporalio/testing';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { networkInterfaces, tmpdir, userInfo } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { gitBlobId, harnessDigest, isHarnessPath } from '../activities/harness';
import { BOX_HOME, buildSyscallFilter, bwrapArgs, ensureBubblewrap, findBwrap, planBox, venvBase, type Box } from '../gpu-worker/sandbox';
import { describeLimits } from '../gpu-worker/limits';
import { materialize, newScratch, sweepScratch, workerScratch } from '../gpu-worker/scratch';
import { createTrainingActivities, type Slot } from '../gpu-worker/training';
import { initRepo } from '../scripts/init';
import { pythonEnv } from '../scripts/provision';
import type { Heartbeat, TrainingInput, TrainingResult } from '../workflows/types';
import { ROOT, cli, gitIn, makeRepo } from './helpers';

const SUMMARY = 'print("---"); print("val_bpb:          1.000000")';
const OUTSIDE_TMP = '/var/tmp'; // where a fixture must not be hidden by the box's private /tmp alone
const FAKE_KEYS = { OPENAI_API_KEY: 'sk-planted-openai-4f2a9c', TEMPORAL_API_KEY: 'planted-temporal-key-77d1e0' };

const NOBODY = 65534; // the unprivileged user: root removes a chmod-000 folder as if it were not locked

/** `code` run by node, as nobody, in this project (its modules load through tsx). */
function asNobody(code: string) {
  const args = [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, '--import', 'tsx', '-e', code];
  return spawnSync('setpriv', args, { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
}

function scratchDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `autoresearch-${prefix}-`));
}

/** The editable file set to `train`, a harness digest computed as the control worker does, and `command`. */
function inputFor(checkout: string, command: string, train = readFileSync(join(checkout, 'train.py'), 'utf8')): TrainingInput {
  const tracked = gitIn(checkout, 'ls-files').split('\n');
  const entries = tracked.filter((p) => isHarnessPath(p, ['train.py'])).map((path) => ({ path, blob: gitBlobId(readFileSync(join(checkout, path))) }));
  return {
    experimentId: `hostile-${Date.now()}`, seed: 11, commit: gitIn(checkout, 'rev-parse', 'HEAD'), files: { 'train.py': train },
    harnessDigest: harnessDigest(entries, ['train.py']), command, budgetSeconds: 2, timeoutMs: 60_000,
  };
}

/** One training through the real activity; heartbeats are collected with their time. */
async function trainOnce(slot: Slot, input: TrainingInput, during?: (env: MockActivityEnvironment) => void) {
  const env = new MockActivityEnvironment();
  const heartbeats: { at: number; details: Heartbeat }[] = [];
  env.on('heartbeat', (details: Heartbeat) => heartbeats.push({ at: Date.now(), details }));
  const started = Date.now();
  const running = env.run(createTrainingActivities([slot]).train, input);
  during?.(env);
  const result = (await running) as TrainingResult;
  return { result, heartbeats, started, ended: Date.now() };
}

/** A digest of every file under `dir` (paths, modes and contents): any write shows. */
function treeDigest(dir: string): string {
  const hash = createHash('sha256');
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const path = join(rel, name);
      const st = lstatSync(join(dir, path));
      hash.update(`${path}\0${st.mode}\0`);
      if (st.isDirectory()) walk(path);
      else hash.update(st.isSymbolicLink() ? readlinkSync(join(dir, path)) : readFileSync(join(dir, path)));
    }
  };
  walk('');
  return hash.digest('hex');
}

/** Living processes whose argv[0] starts with `marker` (the guard and bwrap only mention it in their arguments). */
function processesWith(marker: string): string[] {
  const out = spawnSync('ps', ['-eo', 'stat=,args='], { encoding: 'utf8' }).stdout;
  return out.split('\n').filter((l) => new RegExp(`^\\s*[^Z\\s]\\S*\\s+${marker}`).test(l));
}

async function until(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/** Lines `name: value` the hostile commands print about each attempt. */
function report(result: TrainingResult): Record<string, string> {
  return Object.fromEntries([...result.logTail.matchAll(/^attempt (\S+): (.*)$/gm)].map((m) => [m[1], m[2]]));
}

describe('bwrapArgs: the box as arguments', () => {
  const box: Box = {
    system: ['/usr', '/etc', ['/bin', 'usr/bin']],
    scratch: '/tmp/scratch/worker-1-2/x-1-abc',
    hide: ['/home', '/root', '/root/research/tiny', '/srv/checkout', '/var/cache/autoresearch/repos/r', '/tmp/scratch'],
    private: ['/tmp', BOX_HOME],
    readOnly: ['/root/.cache/autoresearch/python', '/root/.pyenv/versions/3.11.7', '/var/cache/autoresearch'],
    aliases: [['/var/cache/autoresearch', `${BOX_HOME}/.cache/autoresearch`]],
    devices: ['/dev/nvidia0', '/dev/nvidiactl'],
    network: 'none',
    env: { PATH: '/usr/bin:/bin', HOME: BOX_HOME },
  };
  const args = bwrapArgs(box);
  const pairs = (flag: string) => args.flatMap((a, i) => (a === flag ? [args[i + 1]] : []));
  const position = (...seq: string[]) => args.findIndex((_, i) => seq.every((s, j) => args[i + j] === s));

  test('every namespace is its own, capabilities are dropped, and the box dies with its parent', () => {
    for (const flag of ['--unshare-all', '--die-with-parent', '--new-session']) assert.ok(args.includes(flag), flag);
    assert.ok(position('--cap-drop', 'ALL') >= 0);
    assert.ok(!args.includes('--share-net'), 'no network by default');
    assert.ok(bwrapArgs({ ...box, network: 'host' }).includes('--share-net'), '--host-network shares it');
    assert.ok(!args.includes('--as-pid-1'), "bwrap's own init reaps, so a process left behind dies with the box");
    assert.ok(!args.includes('--seccomp'));
    const filtered = bwrapArgs({ ...box, filtered: true });
    assert.equal(filtered[filtered.indexOf('--seccomp') + 1], '4', 'the syscall filter arrives on fd 4 (guard.sh keeps 3)');
  });

  test('the host shows its system folders read-only with a new /proc and /dev; of its trees the scratch alone is writable, hidden ones are empty and read-only', () => {
    assert.equal(position('--ro-bind', '/', '/'), -1, 'not the whole host: no /run, /var, /mnt');
    assert.ok(position('--ro-bind', '/usr', '/usr') >= 0 && position('--ro-bind', '/etc', '/etc') >= 0);
    assert.ok(position('--symlink', 'usr/bin', '/bin') >= 0, 'a merged-/usr link is made again');
    assert.ok(position('--proc', '/proc') > position('--ro-bind', '/usr', '/usr'));
    assert.ok(position('--ro-bind', '/proc/sys', '/proc/sys') > position('--proc', '/proc'), 'kernel settings read-only');
    assert.ok(position('--dev', '/dev') >= 0);
    assert.deepEqual(pairs('--bind'), [box.scratch]);
    assert.deepEqual(pairs('--remount-ro'), ['/home', '/root', '/srv/checkout', '/var/cache/autoresearch/repos/r']);
    assert.ok(position('--remount-ro') > position('--bind', box.scratch, box.scratch), 'after every mount inside them');
    assert.deepEqual(pairs('--dev-bind'), ['/dev/nvidia0', '/dev/nvidiactl'], 'GPU nodes pass through');
    assert.equal(args[args.indexOf('--chdir') + 1], box.scratch);
  });

  test('the deepest rule for a path wins: shown inside hidden, hidden inside shown; an empty directory inside an empty one is not mounted twice', () => {
    const tmpfs = pairs('--tmpfs');
    assert.deepEqual(tmpfs, ['/dev/shm', '/home', '/root', '/tmp', '/srv/checkout', BOX_HOME, '/var/cache/autoresearch/repos/r']);
    assert.ok(position('--tmpfs', BOX_HOME) > position('--tmpfs', '/home'), "the box's writable HOME inside the hidden /home");
    assert.ok(position('--ro-bind', '/root/.cache/autoresearch/python', '/root/.cache/autoresearch/python') > position('--tmpfs', '/root'));
    assert.ok(position('--tmpfs', '/var/cache/autoresearch/repos/r') > position('--ro-bind', '/var/cache/autoresearch', '/var/cache/autoresearch'));
    assert.ok(position('--bind', box.scratch, box.scratch) > position('--tmpfs', '/tmp'));
    assert.ok(position('--ro-bind', '/var/cache/autoresearch', `${BOX_HOME}/.cache/autoresearch`) > position('--tmpfs', '/home'));
  });

  test('a box a root worker starts has no user namespace (its uid would be host root) and ends in setpriv to the box user, for good', () => {
    const rooted = bwrapArgs({ ...box, user: { uid: 65534, setpriv: '/usr/bin/setpriv' } });
    assert.ok(!rooted.includes('--unshare-all') && !rooted.includes('--unshare-user'));
    for (const flag of ['--unshare-pid', '--unshare-ipc', '--unshare-net', '--unshare-uts']) assert.ok(rooted.includes(flag), flag);
    const drop = rooted.slice(rooted.indexOf('/usr/bin/setpriv'));
    assert.deepEqual(drop, ['/usr/bin/setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups', '--no-new-privs', '--inh-caps=-all', '--bounding-set=-all', '--']);
    const perms = (mode: string) => rooted.flatMap((a, i) => (a === '--perms' && rooted[i + 1] === mode ? [rooted[i + 3]] : []));
    assert.deepEqual(perms('1777'), ['/dev/shm', '/tmp', BOX_HOME], 'the box user can write its private tmpfs');
    assert.ok(perms('0755').includes('/root/.pyenv'), 'and enter the folders bwrap makes on the way to what is shown in a hidden one');
  });

  test('at equal depth hiding beats showing: a python env at a hidden path stays hidden', () => {
    const clash = bwrapArgs({ ...box, readOnly: ['/root'] });
    const ro = clash.findIndex((a, i) => a === '--ro-bind' && clash[i + 1] === '/root');
    const hidden = clash.findIndex((a, i) => a === '--tmpfs' && clash[i + 1] === '/root');
    assert.ok(hidden > ro, 'the tmpfs over /root comes after, so it wins');
  });

  test('the environment is exactly the one given', () => {
    const start = args.indexOf('--clearenv');
    assert.ok(start > 0);
    assert.deepEqual(args.slice(start + 1), ['--setenv', 'PATH', '/usr/bin:/bin', '--setenv', 'HOME', BOX_HOME]);
  });
});

describe('a hostile training in the box', () => {
  const saved = { HOME: process.env.HOME, AUTORESEARCH_CACHE: process.env.AUTORESEARCH_CACHE, ...Object.fromEntries(Object.keys(FAKE_KEYS).map((k) => [k, process.env[k]])) };
  const realHome = userInfo().homedir; // /root here: hidden whatever HOME says
  const planted = join(realHome, `.autoresearch-planted-${process.pid}`);
  let fakeHome: string;
  let cache: string;
  let research: string;
  let checkout: string;
  let pythonBin: string;
  let slot: Slot;
  let holder: ChildProcess; // stands for the GPU worker started with keys in its environment
  let base: string;
  let syscallFilter: string;

  before(async () => {
    holder = spawn('sleep', ['600'], { env: { ...process.env, ...FAKE_KEYS }, stdio: 'ignore' });
    assert.ok(findBwrap(), 'bubblewrap is installed (npm test provisions it: apt-get install bubblewrap)');
    pythonBin = await pythonEnv(() => {});
    // Outside /tmp, which the box hides whole: each of these must be hidden (or shown) by its own rule.
    base = mkdtempSync(join(OUTSIDE_TMP, 'autoresearch-hostile-'));
    fakeHome = join(base, 'home');
    mkdirSync(join(fakeHome, '.config', 'temporalio'), { recursive: true });
    writeFileSync(join(fakeHome, '.netrc'), 'machine api.openai.com login me password sk-planted-netrc-93be1\n');
    writeFileSync(join(fakeHome, '.config', 'temporalio', 'temporal.toml'), '[profile.default]\napi_key = "planted-toml-key-c0ffee"\n');
    writeFileSync(planted, 'planted-root-secret-51d7\n');
    cache = join(base, 'cache');
    mkdirSync(join(cache, 'tiny-data'), { recursive: true });
    writeFileSync(join(cache, 'tiny-data', 'val.bin'), 'validation bytes');
    Object.assign(process.env, FAKE_KEYS, { HOME: fakeHome, AUTORESEARCH_CACHE: cache });
    research = join(base, 'research');
    gitIn(base, 'clone', '--quiet', await makeRepo({ 'train.py': `${SUMMARY}\n`, 'prepare.py': 'EVAL_BYTES = 1024\n' }), research);
    checkout = join(base, 'checkout');
    gitIn(base, 'clone', '--quiet', research, checkout); // its origin is the research repo, as on one host
    syscallFilter = join(base, 'syscalls.bpf');
    assert.equal(await buildSyscallFilter(syscallFilter), null, 'npm test provisions python3-seccomp');
    slot = { name: 'host-slot0', checkout, pathPrefix: pythonBin, scratchRoot: join(base, 'scratch'), syscallFilter };
  });

  after(() => {
    holder.kill('SIGKILL');
    for (const [key, value] of Object.entries(saved)) if (value === undefined) delete process.env[key];
    else process.env[key] = value;
    rmSync(planted, { force: true });
    rmSync(base, { recursive: true, force: true });
  });

  test("cannot read the worker's or any other process's environment (a process holding keys runs beside it)", async () => {
    const probe = `python -c '
import glob, os
found, read = [], 0
for path in glob.glob("/proc/[0-9]*/environ"):
    try:
        text = open(path, "rb").read().decode(errors="replace"); read += 1
    except OSError:
        continue
    found += [k for k in ${JSON.stringify(Object.values(FAKE_KEYS))} if k in text]
print("attempt environ:", "found " + ",".join(found) if found else "nothing", "in", read, "processes")
print("attempt holder:", os.path.exists("/proc/${holder.pid}/stat") and "(sleep)" in open("/proc/${holder.pid}/stat").read())
'; python -c '${SUMMARY}'`;
    const { result } = await trainOnce(slot, inputFor(checkout, probe));
    assert.equal(result.exitCode, 0, result.logTail);
    assert.equal(result.metrics.val_bpb, 1, 'the training still returns a normal result');
    assert.equal(result.sandboxed, true);
    assert.match(report(result).environ, /^nothing in [1-9]\d* processes$/, 'it read its own environment and found no key');
    assert.equal(report(result).holder, 'False', "the key holder's pid is not in the box's /proc");

    const open = await trainOnce({ ...slot, sandbox: false }, inputFor(checkout, probe));
    assert.equal(open.result.sandboxed, false, '--no-sandbox results say so');
    assert.match(report(open.result).environ, /found .*sk-planted-openai/, 'without the box the same probe finds the key: the probe works');
  });

  test('cannot read the planted ~/.netrc and temporal.toml in the real HOME, anything in /root, the checkout or the research repo', async () => {
    const files = [join(fakeHome, '.netrc'), join(fakeHome, '.config/temporalio/temporal.toml'), planted, join(checkout, 'prepare.py'), join(research, 'program.md')];
    const probe = [
      ...files.map((f, i) => `cat ${f} >/dev/null 2>&1 && echo "attempt read${i}: $(cat ${f})" || echo "attempt read${i}: refused"`),
      `echo "attempt root: $(ls -A ${realHome} | tr '\\n' ' ')"`,
      `echo "attempt home: $HOME $(ls -A ~ | tr '\\n' ' ')"`,
      `python -c '${SUMMARY}'`,
    ].join('; ');
    const { result } = await trainOnce(slot, inputFor(checkout, probe));
    assert.equal(result.exitCode, 0, result.logTail);
    const seen = report(result);
    for (const [i, file] of files.entries()) assert.equal(seen[`read${i}`], 'refused', file);
    assert.doesNotMatch(result.logTail, /planted/);
    assert.doesNotMatch(seen.root, /autoresearch-planted/, `${realHome} is an empty directory in the box (but for the python it needs)`);
    assert.equal(seen.home.split(' ')[0], BOX_HOME, 'HOME is the empty one of the box');
  });

  test('runs as an unprivileged user even when the worker is root: no /etc/shadow, no kernel settings, nothing under /run or /var', async () => {
    const probe = [
      'echo "attempt uid: $(id -u)"',
      'head -c1 /etc/shadow >/dev/null 2>&1 && echo "attempt shadow: read" || echo "attempt shadow: refused"',
      // the write of the core_pattern attack, to a setting that is harmless when it lands (and is put back)
      'v=$(cat /proc/sys/kernel/hostname); (echo "$v" > /proc/sys/kernel/hostname) 2>/dev/null && echo "attempt sysctl: written" || echo "attempt sysctl: refused"',
      'ls -A /run 2>/dev/null | grep -q . && echo "attempt run: $(ls -A /run | head -3 | tr "\\n" " ")" || echo "attempt run: empty"',
      'test -e /var/tmp && echo "attempt var: shown" || echo "attempt var: absent"',
      'touch /tmp/t "$HOME/t" /dev/shm/t ./t && echo "attempt writes: ok" || echo "attempt writes: failed"',
      `python -c '${SUMMARY}'`,
    ].join('; ');
    const { result } = await trainOnce(slot, inputFor(checkout, probe));
    assert.equal(result.exitCode, 0, result.logTail);
    const seen = report(result);
    assert.notEqual(seen.uid, '0', 'never root in the box');
    assert.equal(seen.shadow, 'refused');
    assert.equal(seen.sysctl, 'refused');
    assert.equal(seen.run, 'empty', 'no docker.sock, no D-Bus');
    assert.equal(seen.var, 'absent');
    assert.equal(seen.writes, 'ok', 'its scratch, /tmp, HOME and /dev/shm stay writable');

    const open = await trainOnce({ ...slot, sandbox: false }, inputFor(checkout, probe));
    const control = report(open.result);
    assert.equal(control.var, 'shown', 'without the box the same probe sees /var: the probe works');
    if (process.getuid?.() === 0) {
      assert.equal(control.uid, '0');
      assert.equal(control.shadow, 'read', 'as root, without the box, /etc/shadow is read: the probe works');
      assert.equal(control.sysctl, 'written', 'and the kernel setting is written');
    }
  });

  test('the syscall filter refuses keyctl, new user namespaces, mounts, perf events and ptrace with EPERM; without it the same calls run', async () => {
    // x86_64 syscall numbers, through libc's syscall(): keyctl 250, perf_event_open 298, ptrace 101
    const probe = `python -c '
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def seen(name, r):
    e = ctypes.get_errno()
    print("attempt " + name + ":", "refused" if r == -1 and e == errno.EPERM else "ran" if r != -1 else "failed " + errno.errorcode[e])
seen("keyctl", libc.syscall(250, 0, -2, 1))
seen("userns", libc.unshare(0x10000000))
os.makedirs("m", exist_ok=True)
seen("mount", libc.mount(b"none", b"m", b"tmpfs", 0, None))
attr = (ctypes.c_uint32 * 32)(1, 128, 0)  # PERF_TYPE_SOFTWARE, sizeof(perf_event_attr), PERF_COUNT_SW_CPU_CLOCK
seen("perf", libc.syscall(298, attr, 0, -1, -1, 0))
seen("ptrace", libc.syscall(101, 0, 0, 0, 0))
'; python -c '${SUMMARY}'`;
    const { result } = await trainOnce(slot, inputFor(checkout, probe));
    assert.equal(result.exitCode, 0, result.logTail);
    const seen = report(result);
    for (const call of ['keyctl', 'userns', 'mount', 'perf', 'ptrace']) assert.equal(seen[call], 'refused', `${call}: ${result.logTail}`);

    const unfiltered = await trainOnce({ ...slot, syscallFilter: undefined }, inputFor(checkout, probe));
    const control = report(unfiltered.result);
    assert.equal(control.keyctl, 'ran', 'a box without the filter runs keyctl: the probe works');
    assert.equal(control.userns, 'ran', 'and makes a user namespace');
  });

  test('past a limit (memory, processes, file size, in-memory folders) a training is a crash that names it; the worker goes on', { timeout: 120_000 }, async () => {
    const MiB = 1024 ** 2;
    const small = { ...slot, limits: { memoryBytes: 256 * MiB, processes: 64, fileBytes: MiB } };
    const fork = `python -c '
import os, time
n = 0
try:
    while n < 1000:
        if os.fork() == 0:
            time.sleep(60); os._exit(0)
        n += 1
except OSError as e:
    raise SystemExit(f"attempt forks: {n} ({e})")
'`;
    const probes = {
      memory: `python -c 'b = bytearray(600 * 1024 * 1024)'`,
      processes: fork,
      file: 'head -c 5000000 /dev/zero > big.bin',
      tmpfs: 'for i in $(seq 100); do head -c 900000 /dev/zero > /tmp/f$i || exit 1; done', // files under the size limit
    };
    const reasons: Record<string, string | undefined> = {};
    for (const [name, probe] of Object.entries(probes)) {
      const { result } = await trainOnce(small, inputFor(checkout, probe));
      reasons[name] = result.problem;
    }
    assert.match(reasons.memory ?? '', /^memory limit: the training asked for more than 256 MiB \(gpu-worker --memory-limit\)$/);
    assert.match(reasons.processes ?? '', /^process limit: more than 64 processes and threads/);
    assert.match(reasons.file ?? '', /^file size limit: a file grew past 1 MiB/);
    assert.match(reasons.tmpfs ?? '', /^space limit: \/tmp, HOME and \/dev\/shm hold 64 MiB each/);

    // The control: the same memory and file probes under the default limits train normally.
    for (const probe of [probes.memory, probes.file]) {
      const { result } = await trainOnce(slot, inputFor(checkout, `${probe} && python -c '${SUMMARY}'`));
      assert.equal(result.problem, undefined, result.logTail);
      assert.equal(result.metrics.val_bpb, 1);
    }
  });

  test('cannot write into the research repo, the checkout, the Python environment, the data cache or another slot', async () => {
    const envDir = dirname(pythonBin);
    const sitePackages = readdirSync(join(envDir, 'lib')).map((v) => join(envDir, 'lib', v, 'site-packages'))[0];
    const other = join(slot.scratchRoot!, 'worker-1-1', 'other-slot');
    mkdirSync(other, { recursive: true });
    writeFileSync(join(other, 'train.py'), 'X = 1\n');
    const watched = { research, checkout, envDir, cache, other };
    const before = Object.fromEntries(Object.entries(watched).map(([k, dir]) => [k, treeDigest(dir)]));
    const targets = {
      program: join(research, 'program.md'), hook: join(research, '.git', 'hooks', 'post-commit'), harness: join(checkout, 'prepare.py'),
      pth: join(sitePackages, `autoresearch-hostile-${process.pid}.pth`), data: join(cache, 'tiny-data', 'val.bin'),
      alias: `${BOX_HOME}/.cache/autoresearch/tiny-data/val.bin`, other: join(other, 'train.py'),
    };
    const probe = `python -c '
import json
for name, path in json.loads(${JSON.stringify(JSON.stringify(targets))}).items():
    try:
        open(path, "a").write("pwned\\n"); print("attempt " + name + ": wrote")
    except OSError as e:
        print("attempt " + name + ": " + type(e).__name__)
open("own.txt", "w").write("the scratch is writable")
print("attempt scratch: " + open("own.txt").read())
'; python -c '${SUMMARY}'`;
    try {
      const { result } = await trainOnce(slot, inputFor(checkout, probe));
      assert.equal(result.exitCode, 0, result.logTail);
      const seen = report(result);
      for (const name of Object.keys(targets)) assert.match(seen[name], /Error$/, `${name}: ${seen[name]}`);
      assert.equal(seen.scratch, 'the scratch is writable');
      for (const [k, dir] of Object.entries(watched)) assert.equal(treeDigest(dir), before[k], `${k} (${dir}) is unchanged`);
    } finally {
      rmSync(targets.pth, { force: true }); // only there if the box failed
    }
  });

  test("no network by default; --network reaches the host's other addresses but never its loopback or cloud metadata (unless --network-allow); --host-network shares it all", async () => {
    const outside = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
    assert.ok(outside, 'this host has an address besides loopback (the stand-in for the internet)');
    const hello = (socket: Socket) => socket.end('hello from the host\n');
    const loopback = createServer(hello).listen(0, '127.0.0.1');
    const lan = createServer(hello).listen(0, outside);
    await Promise.all([once(loopback, 'listening'), once(lan, 'listening')]);
    try {
      const ports = { loopback: (loopback.address() as AddressInfo).port, lan: (lan.address() as AddressInfo).port };
      const probe = `python -c '
import socket
for name, address in [("loopback", ("127.0.0.1", ${ports.loopback})), ("lan", ("${outside}", ${ports.lan})), ("metadata", ("169.254.169.254", 80))]:
    try:
        print("attempt " + name + ":", socket.create_connection(address, timeout=2).recv(64).decode().strip())
    except OSError as e:
        print("attempt " + name + ":", type(e).__name__)
'; python -c '${SUMMARY}'`;
      const reached = async (network: Slot['network'], networkAllow?: string[]) => {
        const { result } = await trainOnce({ ...slot, network, networkAllow }, inputFor(checkout, probe));
        assert.equal(result.exitCode, 0, result.logTail);
        assert.equal(result.sandboxed, true, 'still in the box');
        return report(result);
      };
      // OSError: no route at all; PermissionError: a prohibit route, refused at once. Nothing serves 169.254.169.254 here.
      assert.deepEqual(await reached('none'), { loopback: 'ConnectionRefusedError', lan: 'OSError', metadata: 'OSError' });
      assert.deepEqual(await reached('egress'), { loopback: 'ConnectionRefusedError', lan: 'hello from the host', metadata: 'PermissionError' });
      const allowed = await reached('egress', ['169.254.169.254/32']);
      assert.notEqual(allowed.metadata, 'PermissionError', '--network-allow opens a prohibited range');
      assert.equal((await reached('host')).loopback, 'hello from the host');
    } finally {
      loopback.close();
      lan.close();
    }
  });

  test('cannot leave a process running after the training ends: setsid and double-forked sleepers die with the box', async () => {
    const marker = `autoresearch-hostile-sleeper-${process.pid}`;
    const probe = [
      `setsid bash -c 'exec -a ${marker}-setsid sleep 300' </dev/null >/dev/null 2>&1 &`,
      `( ( exec -a ${marker}-orphan sleep 300 </dev/null >/dev/null 2>&1 & ) & )`,
      'sleep 0.3',
      `echo "attempt inside: $(ps -eo args | grep -c '^${marker}')"`,
      `python -c '${SUMMARY}'`,
    ].join('\n');
    const { result } = await trainOnce(slot, inputFor(checkout, probe));
    assert.equal(result.exitCode, 0, result.logTail);
    assert.equal(report(result).inside, '2', 'both sleepers ran inside the box');
    assert.ok(await until(() => processesWith(marker).length === 0, 3_000), `left running: ${processesWith(marker).join('; ')}`);
  });

  test('a boxed training past its timeout, or cancelled, is killed with everything it started', async () => {
    const marker = `autoresearch-hostile-hang-${process.pid}`;
    const hang = `setsid bash -c 'exec -a ${marker} sleep 300' </dev/null >/dev/null 2>&1 & exec -a ${marker} sleep 300`;
    const timed = await trainOnce(slot, { ...inputFor(checkout, hang), timeoutMs: 1_500 });
    assert.equal(timed.result.timedOut, true);
    assert.ok(await until(() => processesWith(marker).length === 0, 3_000), `left running: ${processesWith(marker).join('; ')}`);

    const cancelled = trainOnce(slot, inputFor(checkout, hang), (env) => {
      void until(() => processesWith(marker).length === 2, 10_000).then(() => env.cancel());
    });
    await assert.rejects(cancelled, (err: Error) => err.name === 'CancelledFailure');
    assert.ok(await until(() => processesWith(marker).length === 0, 3_000), `left running: ${processesWith(marker).join('; ')}`);
  });

  // Before the worker read what a box left with lstat, the first hung the activity forever and the
  // second grew the worker to gigabytes: each has a timeout so that a regression fails, not hangs.
  test('a harness file replaced by a FIFO is a crash naming it, returned at once, boxed or not', { timeout: 60_000 }, async () => {
    const probe = `rm prepare.py && mkfifo prepare.py && echo "attempt fifo: $(stat -c %F prepare.py)"; python -c '${SUMMARY}'`;
    for (const sandbox of [true, false]) {
      const { result, started, ended } = await trainOnce({ ...slot, sandbox }, inputFor(checkout, probe));
      assert.equal(report(result).fifo, 'fifo', 'the probe made its FIFO where prepare.py was');
      assert.equal(result.problem, 'tampered harness: prepare.py is a FIFO', `sandbox ${sandbox}`);
      assert.equal(result.exitCode, 0, 'the command itself succeeded: the worker judged what it left');
      assert.deepEqual(result.metrics, {}, 'its printed val_bpb is not kept');
      assert.ok(ended - started < 10_000, `the result came after ${ended - started} ms`);
    }
  });

  test("a harness file replaced by a link to /dev/zero is a crash naming it; the worker's memory stays flat", { timeout: 60_000 }, async () => {
    const probe = `ln -sf /dev/zero prepare.py && echo "attempt link: $(readlink prepare.py)"; python -c '${SUMMARY}'`;
    const rss = process.memoryUsage().rss;
    const { result, started, ended } = await trainOnce(slot, inputFor(checkout, probe));
    const grown = process.memoryUsage().rss - rss;
    assert.equal(report(result).link, '/dev/zero', 'the probe made its link');
    assert.equal(result.problem, 'tampered harness: prepare.py is a symbolic link');
    assert.deepEqual(result.metrics, {});
    assert.ok(ended - started < 10_000, `the result came after ${ended - started} ms`);
    assert.ok(grown < 64 << 20, `the worker's RSS grew ${(grown / 2 ** 20).toFixed(1)} MiB`);
  });

  test('what a training activity asks is checked: paths outside the editable set are refused as results, never run', async () => {
    const base = inputFor(checkout, 'touch ran; python -c \'print("---"); print("val_bpb: 1.0")\'');
    const cases: [Record<string, string>, RegExp][] = [
      [{ '../x': 'x' }, /^refused: files names "\.\.\/x" outside the checkout$/],
      [{ '/etc/cron.d/x': 'x' }, /outside the checkout/],
      [{ 'a/../train.py': 'x' }, /outside the checkout/],
      [{ '.git/hooks/post-checkout': 'x' }, /inside \.git/],
      [{ 'program.md': 'x' }, /the research instructions/],
      [{ 'new.py': 'x' }, /"new\.py", which is not a tracked file of the checkout/],
    ];
    for (const [files, problem] of cases) {
      const { result } = await trainOnce(slot, { ...base, files: { ...base.files, ...files } });
      assert.match(result.problem ?? '', problem, JSON.stringify(files));
      assert.equal(result.exitCode, null, 'the command never ran');
    }
    const { result } = await trainOnce(slot, base);
    assert.equal(result.problem, undefined, 'the editable file itself is fine');
    assert.equal(result.metrics.val_bpb, 1);
  });
});

describe('real targets in the box', () => {
  test('the shipped tiny target trains and scores inside the box, its data read through the box HOME', async () => {
    const repo = await initRepo('tiny', join(scratchDir('tiny'), 'repo'), () => {});
    const syscallFilter = join(scratchDir('filter'), 'syscalls.bpf');
    assert.equal(await buildSyscallFilter(syscallFilter), null);
    const slot: Slot = { name: 'host-slot0', checkout: repo, pathPrefix: await pythonEnv(() => {}), scratchRoot: scratchDir('scratch'), syscallFilter };
    const command = JSON.parse(readFileSync(join(repo, 'autoresearch.json'), 'utf8')).command as string;
    const { result, heartbeats } = await trainOnce(slot, { ...inputFor(repo, command), budgetSeconds: 3 });
    assert.equal(result.exitCode, 0, result.logTail);
    assert.equal(result.sandboxed, true);
    assert.ok(result.metrics.val_bpb > 0 && result.metrics.val_bpb < 8, `val_bpb ${result.metrics.val_bpb}`);
    assert.ok(heartbeats.some((h) => (h.details.step ?? 0) > 0), 'progress lines became heartbeats');
  });

  test('a repo laid out like the original autoresearch trains and scores inside the box', async () => {
    const fixture = join(__dirname, 'fixtures', 'original-layout');
    const repo = await makeRepo(Object.fromEntries(readdirSync(fixture).map((f) => [f, readFileSync(join(fixture, f), 'utf8')])));
    const slot: Slot = { name: 'host-slot0', checkout: repo, scratchRoot: scratchDir('scratch') };
    const { result } = await trainOnce(slot, inputFor(repo, 'python3 train.py'));
    assert.equal(result.exitCode, 0, result.logTail);
    assert.equal(result.sandboxed, true);
    assert.ok(result.metrics.val_bpb > 0, result.logTail);
    assert.ok(result.metrics.peak_vram_mb > 0, 'its whole summary block is read');
  });
});

describe('the plausibility tripwire', () => {
  test("a val_bpb below the floor the harness declares is a crash named 'implausible score'; an honest one stands", async () => {
    const repo = await makeRepo({ 'train.py': `${SUMMARY}\n`, 'autoresearch.json': '{ "command": "python3 train.py", "floor": 0.5 }\n' });
    const slot: Slot = { name: 'host-slot0', checkout: repo, scratchRoot: scratchDir('tripwire') };
    const faked = `python3 -c 'print("---"); print("val_bpb:          0.000000")'`;
    const { result } = await trainOnce(slot, inputFor(repo, faked));
    assert.equal(result.exitCode, 0);
    assert.equal(result.problem, `implausible score: val_bpb 0.000000 is below this target's floor of 0.5 (autoresearch.json "floor")`);
    const honest = await trainOnce(slot, inputFor(repo, `python3 -c '${SUMMARY}'`));
    assert.equal(honest.result.problem, undefined);
    assert.equal(honest.result.metrics.val_bpb, 1);
  });

  test('the shipped targets declare a floor (their real trainings in tiny.test and gpu.test score above it, so none is a crash)', () => {
    for (const target of ['tiny', 'gpt']) {
      const config = JSON.parse(readFileSync(join(ROOT, 'gpu-worker', 'targets', target, 'autoresearch.json'), 'utf8'));
      assert.ok(config.floor > 0 && config.floor < 1, `${target}: floor ${config.floor}`);
    }
  });
});

describe('heartbeats in every phase', () => {
  test('a checkout of 20,000 files heartbeats while it is copied, digested and removed, not only while the command runs', async (t) => {
    const files = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`data/d${i % 100}/f${i}.txt`, `${i}\n`]));
    const repo = await makeRepo({ ...files, 'train.py': `${SUMMARY}\n` });
    t.after(() => rmSync(repo, { recursive: true, force: true }));
    const slot: Slot = { name: 'host-slot0', checkout: repo, scratchRoot: scratchDir('scratch') };
    const { result, heartbeats, started, ended } = await trainOnce(slot, inputFor(repo, `python3 -c '${SUMMARY}'`));
    assert.equal(result.exitCode, 0, result.logTail);
    const times = [started, ...heartbeats.map((h) => h.at), ended];
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    assert.ok(ended - started > 8_000, `the training took ${ended - started} ms: long enough to need heartbeats before its command`);
    assert.ok(Math.max(...gaps) < 6_000, `longest silence ${Math.max(...gaps)} ms over ${heartbeats.length} heartbeats`);
  });
});

/** PATH as it is, but every directory holding one of `names` replaced by links to the rest of it. */
function pathWithout(...names: string[]): string {
  return (process.env.PATH ?? '').split(delimiter).map((dir) => {
    if (!names.some((name) => existsSync(join(dir, name)))) return dir;
    const shadow = scratchDir('path');
    for (const name of readdirSync(dir)) if (!names.includes(name)) symlinkSync(join(dir, name), join(shadow, name));
    return shadow;
  }).join(delimiter);
}

describe('without bubblewrap', () => {
  test('gpu-worker refuses to start with one line naming the package and --no-sandbox, exit code 2', async () => {
    const repo = await makeRepo({ 'train.py': `${SUMMARY}\n` });
    const out = await cli(['gpu-worker', '--repo', repo], { PATH: pathWithout('bwrap') });
    assert.equal(out.code, 2, out.stderr);
    assert.equal(
      out.stderr.trim(),
      'autoresearch: gpu-worker: bwrap is not installed: install the package "bubblewrap" (e.g. apt-get install bubblewrap), ' +
        'or start the GPU worker with --no-sandbox to accept running proposed code unconfined',
    );
  });

  test('gpu-worker --no-sandbox accepts the risk: it goes on without bwrap, and says so first', async () => {
    const repo = await makeRepo({ 'train.py': `${SUMMARY}\n` });
    const out = await cli(['gpu-worker', '--repo', repo, '--no-sandbox'], { PATH: pathWithout('bwrap'), TEMPORAL_ADDRESS: '127.0.0.1:1' });
    assert.equal(
      out.stdout.split('\n')[0],
      "warning: --no-sandbox: proposed code runs unconfined, as this user, with this host's files and network",
    );
    assert.notEqual(out.code, 0, 'no server answers at 127.0.0.1:1');
    assert.doesNotMatch(out.stderr, /bwrap|bubblewrap/, 'it got past the sandbox check, as far as connecting');
  });

  test('provisioning finds an installed bwrap and does nothing more; where it cannot install it, it says which package to install', async () => {
    const lines: string[] = [];
    assert.equal(await ensureBubblewrap((l) => lines.push(l)), findBwrap());
    assert.deepEqual(lines, [], 'already there: nothing to do, nothing said');
    const said: string[] = [];
    assert.equal(await ensureBubblewrap((l) => said.push(l), pathWithout('bwrap', 'apt-get')), null);
    assert.deepEqual(said, ['bubblewrap (the training sandbox) is missing: install the package "bubblewrap" from your distribution (it works unprivileged with user namespaces)']);
  });
});

describe('gpu-worker --repo', () => {
  test('refuses a path that is missing, a file, not a repository, or a repository without commits, with one line each', async () => {
    const dir = scratchDir('not-a-repo');
    writeFileSync(join(dir, 'file'), 'x');
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    gitIn(empty, 'init', '--quiet');
    const cases: [string, string][] = [
      [join(dir, 'nothing'), 'does not exist'],
      [join(dir, 'file'), 'is a file, not a clone of the research repo'],
      [dir, 'is not a git repository (clone the research repo there)'],
      [empty, 'has no commits yet'],
    ];
    for (const [repo, why] of cases) {
      const out = await cli(['gpu-worker', '--repo', repo]);
      assert.equal(out.code, 2, out.stderr);
      assert.equal(out.stderr.trim(), `autoresearch: gpu-worker --repo: ${repo} ${why}`);
    }
  });
});

test('gpu-worker limits: a size or count it cannot read is one line and exit 2; the start-up line says what is in force', async () => {
  for (const [flag, value, line] of [
    ['--memory-limit', '12X', '--memory-limit: "12X" is not a size of at least 1M (e.g. 16G, 512M)'],
    ['--file-size-limit', '10k', '--file-size-limit: "10k" is not a size of at least 1M (e.g. 16G, 512M)'],
    ['--process-limit', '4', '--process-limit: "4" is not a whole number ≥ 16'],
  ]) {
    const out = await cli(['gpu-worker', '--repo', ROOT, flag, value]);
    assert.equal(out.code, 2, out.stderr);
    assert.equal(out.stderr.trim(), `autoresearch: ${line}`);
  }
  const line = describeLimits({ memoryBytes: 12 * 1024 ** 3, processes: 1024, fileBytes: 32 * 1024 ** 3 }, true);
  assert.match(line, /^limits per training \(rlimits; (no cgroup v2 here|cgroup v2 is not delegated to this worker)\): memory 12\.0 GiB, 1024 processes and threads of its user, files up to 32\.0 GiB, \/tmp, HOME and \/dev\/shm 3\.0 GiB each$/);
});

test('gpu-worker --no-network, now the default, says what replaced it', async () => {
  const out = await cli(['gpu-worker', '--repo', ROOT, '--no-network']);
  assert.equal(out.code, 2);
  assert.equal(out.stderr.trim(), 'autoresearch: gpu-worker: --no-network is gone: trainings have no network unless --network');
});

test('gpu-worker network flags: --network-allow needs --network and takes CIDRs; --network and --host-network exclude each other', async () => {
  const refused = async (args: string[], line: string) => {
    const out = await cli(['gpu-worker', '--repo', ROOT, ...args]);
    assert.equal(out.code, 2, out.stderr);
    assert.equal(out.stderr.trim(), `autoresearch: ${line}`);
  };
  await refused(['--network-allow', '10.0.0.0/8'], '--network-allow applies with --network only (egress-only networking)');
  await refused(['--network', '--network-allow', '10.0.0.0/33'], '--network-allow: "10.0.0.0/33" is not an IPv4 CIDR like 192.168.1.0/24');
  await refused(['--network', '--host-network'], 'gpu-worker: --network and --host-network exclude each other');
});

describe('planBox on this host', () => {
  test('hides HOME, /root, the checkout and the repo it was cloned from; shows the python env and the interpreter it was made from', async () => {
    const pythonBin = await pythonEnv(() => {});
    const research = await makeRepo({ 'train.py': 'X = 1\n' });
    const checkout = join(scratchDir('checkout'), 'clone');
    gitIn(tmpdir(), 'clone', '--quiet', research, checkout);
    const scratch = scratchDir('scratch');
    const box = await planBox({ scratch, scratchRoot: dirname(scratch), checkout, pathPrefix: pythonBin, network: 'none', env: { HOME: BOX_HOME } });
    for (const path of ['/tmp', '/root', '/home', checkout, research]) assert.ok(box.hide.includes(path), `${path} hidden`);
    assert.ok(box.readOnly.includes(dirname(pythonBin)), 'the python env');
    const base = venvBase(pythonBin);
    if (base) assert.ok(box.readOnly.includes(base), `the interpreter it was made from (${base})`);
    assert.equal(box.scratch, scratch);
  });
});

describe('scratch directories', () => {
  test('a worker start sweeps the scratch of workers that are gone (or whose pid now names another process), never a live one', async () => {
    const root = scratchDir('scratch-root');
    const live = await workerScratch(root);
    const dead = join(root, `worker-${spawnSync('true').pid}-${Date.now()}`);
    const reused = join(root, `worker-${process.pid}-1`); // our pid, another start time: a dead worker's pid reused
    for (const dir of [live, dead, reused]) {
      mkdirSync(join(dir, 'exp-1-abc'), { recursive: true });
      writeFileSync(join(dir, 'exp-1-abc', 'train.py'), 'X = 1\n');
    }
    const swept = await sweepScratch(root);
    assert.deepEqual(swept.sort(), [dead, reused].sort());
    assert.ok(existsSync(join(live, 'exp-1-abc', 'train.py')), "this worker's own scratch stays");
    assert.deepEqual(readdirSync(root), [live.split('/').at(-1)]);
  });

  test("a worker's scratch folder has a name nobody can guess, under a root only its user can enter; a root that is a link is refused", async () => {
    const root = join(scratchDir('scratch-root'), 'scratch');
    const mine = await workerScratch(root);
    assert.match(mine, new RegExp(`^${root}/worker-${process.pid}-\\d+-\\w{6}$`));
    assert.equal(await workerScratch(root), mine, 'one folder per worker process');
    assert.equal(lstatSync(root).mode & 0o777, 0o700);
    const elsewhere = scratchDir('elsewhere');
    const linked = join(dirname(root), 'linked');
    symlinkSync(elsewhere, linked);
    await assert.rejects(newScratch('exp-1', linked), { message: `the scratch root ${linked} is not a folder of this user's` });
    const warnings: string[] = [];
    assert.deepEqual(await sweepScratch(linked, (l) => warnings.push(l)), []);
    assert.deepEqual(warnings, [`the scratch root ${linked} is not a folder of this user's: nothing swept`]);
    assert.deepEqual(readdirSync(elsewhere), [], 'nothing was made through the link');
  });

  test('a dead worker\'s folders its trainings locked (chmod 000) are unlocked and swept by a worker that is not root, links never followed', async (t) => {
    const base = scratchDir('locked');
    t.after(() => rmSync(base, { recursive: true, force: true }));
    chmodSync(base, 0o755); // nobody must get in
    const root = join(base, 'scratch');
    const dead = spawnSync('true').pid;
    const locked = join(root, `worker-${dead}-1-AbC123`, 'autoresearch-exp-1-abc', 'locked');
    const stuck = join(root, `worker-${dead}-2-XyZ789`, 'autoresearch-exp-2-abc', 'stuck');
    const outside = join(base, 'outside');
    for (const dir of [join(locked, 'inner'), stuck, outside]) mkdirSync(dir, { recursive: true });
    for (const dir of [join(locked, 'inner'), stuck, outside]) writeFileSync(join(dir, 'f.txt'), 'x\n');
    symlinkSync(outside, join(locked, 'escape'));
    spawnSync('chown', ['-R', `${NOBODY}:${NOBODY}`, root, outside]);
    spawnSync('chown', ['-R', 'root:root', stuck]); // not the worker's: it cannot unlock this one
    for (const dir of [join(locked, 'inner'), locked, stuck]) chmodSync(dir, 0);
    chmodSync(outside, 0o500);

    const plainRm = asNobody(`require('node:fs/promises').rm(${JSON.stringify(dirname(dirname(locked)))}, { recursive: true, force: true })`);
    assert.match(plainRm.stderr, /EACCES/, 'the sweep as it was (rm -r) fails on the locked folder: the fixture locks');
    const started = Date.now();
    const sweep = asNobody(`require('./gpu-worker/scratch').sweepScratch(${JSON.stringify(root)}, (l) => console.log('warning: ' + l))
      .then((swept) => console.log('swept: ' + JSON.stringify(swept)))`);
    assert.equal(sweep.status, 0, sweep.stderr);
    const said = sweep.stdout.trim().split('\n');
    assert.equal(said.at(-1), `swept: ${JSON.stringify([dirname(dirname(locked))])}`, sweep.stdout);
    assert.match(said[0], new RegExp(`^warning: could not remove the scratch folder ${dirname(dirname(stuck))}: EACCES`));
    assert.equal(said.length, 2, 'one warning, for the folder it could not unlock, and the sweep went on');
    assert.ok(Date.now() - started < 10_000);
    assert.equal(lstatSync(outside).mode & 0o777, 0o500, 'the folder a link pointed to kept its mode');
    assert.equal(readFileSync(join(outside, 'f.txt'), 'utf8'), 'x\n', 'and its file');
  });

  test('materialize copies the tracked files with their modes, writes the editable files over them, and reports progress as it goes', async (t) => {
    const files = Object.fromEntries(Array.from({ length: 1_000 }, (_, i) => [`data/f${i}.txt`, `${i}\n`]));
    const repo = await makeRepo({ ...files, 'train.py': 'X = 1\n', 'run.sh': '#!/bin/sh\necho hi\n' });
    const dir = scratchDir('materialized');
    t.after(() => [repo, dir].forEach((d) => rmSync(d, { recursive: true, force: true })));
    spawnSync('chmod', ['755', join(repo, 'run.sh')]);
    const paths = gitIn(repo, 'ls-files').split('\n');
    const calls: [number, number][] = [];
    await materialize(repo, paths, { files: { 'train.py': 'X = 2\n' } }, dir, (done, total) => calls.push([done, total]));
    assert.equal(readFileSync(join(dir, 'train.py'), 'utf8'), 'X = 2\n');
    assert.equal(readFileSync(join(dir, 'data/f999.txt'), 'utf8'), '999\n');
    assert.equal(lstatSync(join(dir, 'run.sh')).mode & 0o777, 0o755);
    assert.ok(calls.length >= 5, `${calls.length} progress calls for ${paths.length} files`);
    assert.deepEqual(calls.at(-1), [paths.length, paths.length]);
    assert.ok(calls.every(([done], i) => i === 0 || done > calls[i - 1][0]), 'progress only moves forward');
  });
});
