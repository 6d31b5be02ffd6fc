// The box every training runs in: bubblewrap (`bwrap`, the sandbox under Flatpak). Proposed code is
// untrusted: in the box it sees only its own processes, reads the host but writes only its scratch
// copy and a private /tmp, finds an empty HOME, no keys, no checkout, no other slot, and no network
// unless the worker allows it. We defend against mistakes and naive cheating, not a kernel exploit.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';

export const BOX_HOME = '/home/sandbox'; // the training's HOME: an empty directory of its own
export const SANDBOX_PACKAGE = 'bubblewrap'; // the distribution package that ships bwrap
// Under the cache: every validation split of a target that declares `evaluate`. Its training and the
// model answering the evaluation find it empty; only the harness's scorer sees it.
export const VALIDATION_DIR = 'validation';
const PROBE_TIMEOUT_MS = 10_000; // a box that cannot start `true` in this time does not work here
const GPU_DEVICES = /^(nvidia|dri$)/; // /dev entries CUDA (and DRM) need inside the box
const execFileAsync = promisify(execFile);

type Log = (line: string) => void;

/** What a box shows of the host: everything read-only, except as said here. */
export interface Box {
  scratch: string; // the one writable tree of the host, at its own path; the command starts there
  readOnlyScratch?: boolean; // the evaluation's boxes: they read what the training left and change nothing
  hide: string[]; // paths replaced by an empty read-only directory (HOME, checkout, other scratch dirs, validation...)
  private: string[]; // empty writable directories of the box's own, in memory (/tmp, its HOME)
  readOnly: string[]; // paths shown again, read-only, where a hidden path covers them (python env, data)
  aliases: [from: string, to: string][]; // host paths shown read-only at another place too
  devices: string[]; // device nodes passed through (GPUs)
  network: boolean; // share the host's network, loopback included
  env: Record<string, string>; // the command's whole environment
}

type Mount = { kind: 'hide' | 'private' | 'ro' | 'rw'; src: string; dest: string };
const RANK = { ro: 0, hide: 1, private: 1, rw: 2 } as const;
const FLAG = { hide: '--tmpfs', private: '--tmpfs', ro: '--ro-bind', rw: '--bind' } as const;
const depth = (path: string) => path.split('/').filter(Boolean).length;
const within = (path: string, dir: string) => dir === '/' || path.startsWith(`${dir}/`);
const empty = (m: Mount | undefined) => m?.kind === 'hide' || m?.kind === 'private';

/**
 * The mounts of a box in the order bwrap needs them: it mounts in argument order, later over
 * earlier, so the shallowest go first and the deepest rule for a path wins (the python env inside a
 * hidden HOME is shown, a checkout inside a shown cache is hidden); at equal depth hiding beats
 * showing, and the scratch beats both. An empty directory inside another empty one needs no mount
 * of its own, unless it is writable inside a read-only one (the box's HOME in the hidden /home).
 */
function mountsOf(box: Box): Mount[] {
  const all: Mount[] = [
    ...box.hide.map((p): Mount => ({ kind: 'hide', src: p, dest: p })),
    ...box.private.map((p): Mount => ({ kind: 'private', src: p, dest: p })),
    ...box.readOnly.map((p): Mount => ({ kind: 'ro', src: p, dest: p })),
    ...box.aliases.map(([src, dest]): Mount => ({ kind: 'ro', src, dest })),
    { kind: 'rw' as const, src: box.scratch, dest: box.scratch },
  ].sort((a, b) => depth(a.dest) - depth(b.dest) || RANK[a.kind] - RANK[b.kind]);
  return all.filter((m, i) => {
    const enclosing = all.slice(0, i).filter((e) => e.dest !== m.dest && within(m.dest, e.dest)).at(-1);
    if (m.kind === 'hide') return !empty(enclosing);
    if (m.kind === 'private') return enclosing?.kind !== 'private';
    return true;
  });
}

/** bwrap's arguments for a box: everything it runs is confined as the README's "The sandbox" says. */
export function bwrapArgs(box: Box): string[] {
  const mounts = mountsOf(box);
  const flag = (m: Mount) => (m.kind === 'rw' && box.readOnlyScratch ? FLAG.ro : FLAG[m.kind]);
  return [
    '--unshare-all', // pid, ipc, uts, mount, network (and cgroup where possible)
    ...(box.network ? ['--share-net'] : []),
    '--die-with-parent', // on top of the guard: the box dies with the process that started it
    '--new-session', // no TIOCSTI into the worker's terminal
    '--cap-drop', 'ALL', // root keeps its capabilities in bwrap otherwise, and could unmount what hides
    '--ro-bind', '/', '/',
    '--proc', '/proc', // a new procfs: only the box's own processes, so no other environment to read
    '--dev', '/dev',
    '--tmpfs', '/dev/shm',
    ...box.devices.flatMap((d) => ['--dev-bind', d, d]),
    ...mounts.flatMap((m) => (empty(m) ? [FLAG[m.kind], m.dest] : [flag(m), m.src, m.dest])),
    // last: bwrap makes the mount points of what is shown inside a hidden directory while it is writable
    ...mounts.flatMap((m) => (m.kind === 'hide' ? ['--remount-ro', m.dest] : [])),
    '--chdir', box.scratch,
    '--clearenv',
    ...Object.entries(box.env).flatMap(([key, value]) => ['--setenv', key, value]),
  ];
}

/** The cache of the shipped targets' Python environment and data (what provision fills). */
export function cacheDir(env = process.env): string {
  return env.AUTORESEARCH_CACHE ?? join(homedir(), '.cache', 'autoresearch');
}

function onPath(name: string, path: string): string | null {
  for (const dir of path.split(delimiter)) if (dir && existsSync(join(dir, name))) return join(dir, name);
  return null;
}

/** The bwrap on PATH (honouring the PATH given), or null. */
export function findBwrap(path = process.env.PATH ?? ''): string | null {
  return onPath('bwrap', path);
}

/** GPU device nodes present on this host: /dev/nvidia*, /dev/nvidia-caps, /dev/dri. */
export function gpuDevices(dev = '/dev'): string[] {
  if (!existsSync(dev)) return [];
  return readdirSync(dev).filter((name) => GPU_DEVICES.test(name)).map((name) => join(dev, name));
}

/**
 * The interpreter a virtual environment was made from (`home` in its pyvenv.cfg is that
 * interpreter's bin directory): the box must show it, or the environment's `python` dangles.
 */
export function venvBase(binDir: string): string | null {
  const cfg = join(dirname(binDir), 'pyvenv.cfg');
  if (!existsSync(cfg)) return null;
  const home = /^home\s*=\s*(.+)$/m.exec(readFileSync(cfg, 'utf8'))?.[1].trim();
  return home ? dirname(home) : null;
}

/** Why no box can be made here, as one line naming the fix, or null when bwrap works. */
export function sandboxProblem(path = process.env.PATH ?? ''): string | null {
  const bwrap = findBwrap(path);
  const accept = 'or start the GPU worker with --no-sandbox to accept running proposed code unconfined';
  const install = `install the package "${SANDBOX_PACKAGE}" (e.g. apt-get install ${SANDBOX_PACKAGE})`;
  if (!bwrap) return `bwrap is not installed: ${install}, ${accept}`;
  const box = ['--unshare-all', '--die-with-parent', '--cap-drop', 'ALL', '--ro-bind', '/', '/', '--proc', '/proc'];
  const probe = spawnSync(bwrap, [...box, '--dev', '/dev', 'true'], { encoding: 'utf8', timeout: PROBE_TIMEOUT_MS });
  if (probe.status === 0) return null;
  const why = (probe.stderr || probe.error?.message || `exit ${probe.status}`).trim().split('\n')[0];
  return `bwrap cannot make a sandbox here (${why}): allow unprivileged user namespaces or run as root, ${accept}`;
}

/** A path as the kernel sees it (mounts follow symlinks), or null when it does not exist. */
export function realPath(path: string): string | null {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
}

function runQuietly(cmd: string, args: string[], log: Log): Promise<boolean> {
  return new Promise((done) => {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }; // apt-get asks nothing
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    const relay = (chunk: Buffer) => chunk.toString().split('\n').filter(Boolean).forEach((l) => log(`  ${l}`));
    child.stdout.on('data', relay);
    child.stderr.on('data', relay);
    child.on('error', () => done(false));
    child.on('close', (code) => done(code === 0));
  });
}

/**
 * Provisioning: installs bubblewrap where we may (root with apt-get), idempotently; elsewhere says how.
 * Never throws: without bwrap the GPU worker refuses to start, with the same advice.
 */
export async function ensureBubblewrap(log: Log = console.log, path = process.env.PATH ?? ''): Promise<string | null> {
  const found = findBwrap(path);
  if (found) return found;
  const howTo = `install the package "${SANDBOX_PACKAGE}" from your distribution ` +
    '(it works unprivileged with user namespaces)';
  const aptGet = process.getuid?.() === 0 ? onPath('apt-get', path) : null;
  if (!aptGet) {
    log(`bubblewrap (the training sandbox) is missing: ${howTo}`);
    return null;
  }
  log(`installing ${SANDBOX_PACKAGE} (the training sandbox) with apt-get`);
  const install = ['install', '-y', '--no-install-recommends', SANDBOX_PACKAGE];
  const installed = async () => runQuietly(aptGet, install, log);
  const ok = (await installed()) || ((await runQuietly(aptGet, ['update'], log)) && (await installed())); // stale lists
  if (!ok || !findBwrap(path)) log(`could not install ${SANDBOX_PACKAGE}: ${howTo}`);
  return findBwrap(path);
}

/** This worker's own install (code, .autoresearch/ state): the nearest folder above with a package.json. */
function projectRoot(from = __dirname): string | null {
  if (existsSync(join(from, 'package.json'))) return from;
  return dirname(from) === from ? null : projectRoot(dirname(from));
}

/** What one training's box is made from. */
export interface BoxRequest {
  scratch: string; // this training's scratch copy
  scratchRoot: string; // every worker's scratch directories: other slots' included
  checkout: string; // the GPU worker's clone of the research repo
  pathPrefix?: string; // the slot's bin directory (the shipped targets' Python environment)
  network: boolean;
  env: Record<string, string>;
  readOnlyScratch?: boolean; // the evaluation's boxes
  validation?: 'shown' | 'hidden'; // default shown; hidden from the training of a target that declares `evaluate`
  channel?: string; // a directory shown read-only (the evaluation's pipes, which stay writable)
}

/**
 * The checkout with the repos it came from: its git directory when that lives elsewhere (a
 * worktree) and the remotes that are local paths (on one host, the research repo itself).
 */
async function checkoutFamily(checkout: string): Promise<string[]> {
  const run = (args: string[]) => execFileAsync('git', args, { cwd: checkout }).then((r) => r.stdout, () => '');
  const commonDir = (await run(['rev-parse', '--path-format=absolute', '--git-common-dir'])).trim();
  const remotes = await run(['config', '--get-regexp', '^remote\\..*\\.url$']);
  const urls = remotes.split('\n').map((line) => line.split(' ').slice(1).join(' '));
  // scp-like `host:path` and `scheme://` URLs are other hosts; file:// and plain paths are this one
  const local = urls.filter((u) => u.startsWith('file://') || (u && !/^[\w+.-]+:\/\/|^[^/]*:/.test(u)));
  return [checkout, commonDir, ...local.map((u) => resolve(checkout, u.replace(/^file:\/\//, '')))].filter(Boolean);
}

/**
 * The cache's validation directory where it is, and where the box's HOME shows the cache again (a
 * symlink there points at the first, hidden too).
 */
function validationPaths(): string[] {
  const cache = realPath(cacheDir());
  const dir = cache && realPath(join(cache, VALIDATION_DIR));
  if (!cache || !dir || !lstatSync(dir).isDirectory()) return [];
  const aliased = lstatSync(join(cache, VALIDATION_DIR)).isDirectory();
  return [dir, ...(aliased ? [join(BOX_HOME, '.cache', 'autoresearch', VALIDATION_DIR)] : [])];
}

/** The box of one training (or evaluation) on this host: see the README's "The sandbox" for each line. */
export async function planBox(req: BoxRequest): Promise<Box> {
  const existing = (paths: (string | null | undefined)[]) =>
    [...new Set(paths.flatMap((p) => (p && realPath(p)) || []))];
  const base = req.pathPrefix ? venvBase(req.pathPrefix) : null;
  const pythonEnv = base ? dirname(req.pathPrefix!) : req.pathPrefix; // the whole venv, or just the bin directory
  const homes = ['/home', '/root', homedir(), process.env.HOME];
  const family = await checkoutFamily(req.checkout);
  return {
    scratch: realPath(req.scratch) ?? req.scratch,
    readOnlyScratch: req.readOnlyScratch,
    hide: [
      ...existing([...homes, projectRoot(), req.scratchRoot, ...family]),
      ...(req.validation === 'hidden' ? validationPaths() : []),
    ],
    private: ['/tmp', BOX_HOME],
    readOnly: existing([cacheDir(), pythonEnv, base, req.channel]),
    // Repos laid out like the original look for their data in ~/.cache/autoresearch: the box's HOME has it.
    aliases: existing([cacheDir()]).map((cache) => [cache, join(BOX_HOME, '.cache', 'autoresearch')]),
    devices: gpuDevices(),
    network: req.network,
    env: req.env,
  };
}
