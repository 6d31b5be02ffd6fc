// The box every training runs in: bubblewrap (`bwrap`, the sandbox under Flatpak). Proposed code is
// untrusted: in the box it sees only its own processes, reads the host but writes only its scratch
// copy and a private /tmp, finds an empty HOME, no keys, no checkout, no other slot, and no network
// unless the worker allows it. A worker running as root starts its boxes as an unprivileged user.
// We defend against mistakes and hostile code, not a kernel exploit.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { chmod, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { EGRESS_PACKAGE, egressArgs, SLIRP_DNS, type Egress } from './egress';
import { workerScratch } from './scratch';

export const BOX_HOME = '/home/sandbox'; // the training's HOME: an empty directory of its own
export const SANDBOX_PACKAGE = 'bubblewrap'; // the distribution package that ships bwrap
export const SECCOMP_PACKAGE = 'python3-seccomp'; // libseccomp for the system Python: builds the syscall filter
export const FILTER_FD = 4; // the descriptor the box's syscall filter reaches bwrap on (guard.sh keeps 3)
const SYSTEM_PYTHON = '/usr/bin/python3'; // the distribution's Python, where its python3-seccomp is
const FILTER_SCRIPT = join(__dirname, 'seccomp.py');
// Under the cache: every validation split of a target that declares `evaluate`. Its training and the
// model answering the evaluation find it empty; only the harness's scorer sees it.
export const VALIDATION_DIR = 'validation';
// Who a training runs as when the worker is root: nobody, with no capabilities and no way back.
export const BOX_UID = 65534;
// What a box shows of the host's root (read-only): the system folders, never /run, /var, /home, /root or /mnt.
const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/etc', '/opt', '/sys', '/nix'];
const PROBE_TIMEOUT_MS = 10_000; // a box that cannot start `true` in this time does not work here
const GPU_DEVICES = /^(nvidia|dri$)/; // /dev entries CUDA (and DRM) need inside the box
const execFileAsync = promisify(execFile);
// The only variables a box's command inherits: no API keys, tokens or cloud credentials.
const INHERITED_ENV = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'AUTORESEARCH_CACHE'];

type Log = (line: string) => void;

/** A box's network: none at all; egress only (gpu-worker/egress.ts: never the host's loopback); or the host's own. */
export type Network = 'none' | 'egress' | 'host';

/** What a box shows of the host: everything read-only, except as said here. */
export interface Box {
  system: (string | [link: string, target: string])[]; // the host's system folders, or the links that stand for them
  user?: { uid: number; setpriv: string }; // when the worker is root: the box drops to this user before the command
  scratch: string; // the one writable tree of the host, at its own path; the command starts there
  readOnlyScratch?: boolean; // the evaluation's boxes: they read what the training left and change nothing
  hide: string[]; // paths replaced by an empty read-only directory (HOME, checkout, other scratch dirs, validation...)
  private: string[]; // empty writable directories of the box's own, in memory (/tmp, its HOME)
  tmpfsBytes?: number; // how much each of those (and /dev/shm) may hold
  readOnly: string[]; // paths shown again, read-only, where a hidden path covers them (python env, data)
  aliases: [from: string, to: string][]; // host paths shown read-only at another place too
  devices: string[]; // device nodes passed through (GPUs)
  network: Network;
  filtered?: boolean; // a syscall filter arrives on FILTER_FD (gpu-worker/seccomp.py)
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

/**
 * The folders to make, traversable by anyone, between an empty directory and a path shown inside it:
 * bwrap makes them 0700 and root's, which the box's user could not enter.
 */
function foldersTo(m: Mount, earlier: Mount[]): string[] {
  const enclosing = earlier.filter((e) => e.dest !== m.dest && within(m.dest, e.dest)).at(-1);
  if (!empty(enclosing) || m.kind === 'hide') return [];
  const parts = m.dest.slice(enclosing!.dest.length + 1).split('/').slice(0, -1);
  return parts.map((_, i) => `${enclosing!.dest}/${parts.slice(0, i + 1).join('/')}`);
}

/** bwrap's arguments for a box: everything it runs is confined as the README's "The sandbox" says. */
export function bwrapArgs(box: Box): string[] {
  const mounts = mountsOf(box);
  const flag = (m: Mount) => (m.kind === 'rw' && box.readOnlyScratch ? FLAG.ro : FLAG[m.kind]);
  const asUser = box.user !== undefined;
  const shared = [
    ...(asUser ? ['--perms', '1777'] : []), // root made these tmpfs; the box's user writes them
    ...(box.tmpfsBytes ? ['--size', String(box.tmpfsBytes)] : []),
  ];
  const made = new Set(mounts.map((m) => m.dest));
  const fresh = (dir: string) => !made.has(dir) && Boolean(made.add(dir));
  return [
    // pid, ipc, uts, mount, network (and cgroup where possible). Not a user namespace when root starts
    // the box: its uid would map to the host's root, who owns /etc/shadow and /proc/sys.
    ...(asUser ? ['--unshare-pid', '--unshare-ipc', '--unshare-net', '--unshare-uts', '--unshare-cgroup-try'] : ['--unshare-all']),
    ...(box.network === 'host' ? ['--share-net'] : box.network === 'egress' ? egressArgs() : []),
    '--die-with-parent', // on top of the guard: the box dies with the process that started it
    '--new-session', // no TIOCSTI into the worker's terminal
    ...(box.filtered ? ['--seccomp', String(FILTER_FD)] : []),
    '--cap-drop', 'ALL', // root keeps its capabilities in bwrap otherwise, and could unmount what hides
    ...(asUser ? ['--cap-add', 'CAP_SETUID', '--cap-add', 'CAP_SETGID', '--cap-add', 'CAP_SETPCAP'] : []), // for setpriv, once
    ...box.system.flatMap((s) => (typeof s === 'string' ? ['--ro-bind', s, s] : ['--symlink', s[1], s[0]])),
    '--proc', '/proc', // a new procfs: only the box's own processes, so no other environment to read
    '--ro-bind', '/proc/sys', '/proc/sys', // no kernel settings (core_pattern is a way to root on the host)
    '--dev', '/dev',
    ...shared, '--tmpfs', '/dev/shm',
    ...box.devices.flatMap((d) => ['--dev-bind', d, d]),
    ...mounts.flatMap((m, i) => [
      ...foldersTo(m, mounts.slice(0, i)).filter(fresh).flatMap((dir) => ['--perms', '0755', '--dir', dir]),
      ...(m.kind === 'private' ? [...shared, FLAG.private, m.dest] : empty(m) ? [FLAG[m.kind], m.dest] : [flag(m), m.src, m.dest]),
    ]),
    // last: bwrap makes the mount points of what is shown inside a hidden directory while it is writable
    ...mounts.flatMap((m) => (m.kind === 'hide' ? ['--remount-ro', m.dest] : [])),
    '--chdir', box.scratch,
    '--clearenv',
    ...Object.entries(box.env).flatMap(([key, value]) => ['--setenv', key, value]),
    ...(box.user ? dropTo(box.user) : []),
  ];
}

/** The command's prefix that makes root the box's user for good: no groups, capabilities or setuid way back. */
function dropTo({ uid, setpriv }: NonNullable<Box['user']>): string[] {
  return [setpriv, '--reuid', String(uid), '--regid', String(uid), '--clear-groups', '--no-new-privs',
    '--inh-caps=-all', '--bounding-set=-all', '--'];
}

/** The host's system folders as a box shows them: real folders bound, merged-/usr links made again. */
export function systemDirs(dirs = SYSTEM_DIRS): Box['system'] {
  return dirs.flatMap((dir): Box['system'] => {
    const st = lstatSafe(dir);
    if (!st) return [];
    return [st.isSymbolicLink() ? [dir, readlinkSync(dir)] : dir];
  });
}

function lstatSafe(path: string) {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

/** The allowlisted environment of a box's command, with `pathPrefix` first on PATH. */
export function boxEnv(pathPrefix: string | undefined, boxed: boolean, from = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of INHERITED_ENV) if (from[key] !== undefined) env[key] = from[key]!;
  if (pathPrefix) env.PATH = `${pathPrefix}:${env.PATH ?? '/usr/bin:/bin'}`;
  if (boxed) {
    env.HOME = BOX_HOME; // the worker's HOME holds its keys; the box's is empty
    delete env.TMPDIR; // the box has a private /tmp; the worker's TMPDIR is not there
  }
  return env;
}

/** Who this worker's boxes drop to: BOX_UID when it runs as root, else nobody (the box runs as the worker's user). */
export function boxUser(path = process.env.PATH ?? ''): Box['user'] {
  return process.getuid?.() === 0 ? { uid: BOX_UID, setpriv: onPath('setpriv', path) ?? 'setpriv' } : undefined;
}

/** Gives what a box must write (its scratch, the evaluation's pipes) to the box's user; links are not followed. */
export async function handToBox(path: string): Promise<void> {
  const uid = boxUser()?.uid;
  if (uid === undefined) return;
  await execFileAsync('chown', ['-R', '-h', `${uid}:${uid}`, path]);
  await chmod(path, 0o711); // bwrap enters it after dropping root's capabilities (its parent stays 0700)
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

/**
 * GPU device nodes present on this host: /dev/nvidia*, /dev/nvidia-caps, /dev/dri. Given the minor
 * number of a slot's GPU, only its own /dev/nvidiaN and the control nodes CUDA needs (nvidiactl,
 * nvidia-uvm, nvidia-modeset, nvidia-caps): no other slot's GPU, and no DRM nodes, which CUDA does not use.
 */
export function gpuDevices(dev = '/dev', minor?: number): string[] {
  if (!existsSync(dev)) return [];
  const own = (name: string) => minor === undefined || (name !== 'dri' && (!/^nvidia\d+$/.test(name) || name === `nvidia${minor}`));
  return readdirSync(dev).filter((name) => GPU_DEVICES.test(name) && own(name)).map((name) => join(dev, name));
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

/**
 * Builds the box's syscall filter (BPF) at `out` with the system Python's libseccomp. Why it cannot,
 * as one line naming the package, or null.
 */
export async function buildSyscallFilter(out: string): Promise<string | null> {
  const missing = `python3-seccomp is not installed: install the package "${SECCOMP_PACKAGE}" (npx autoresearch provision does, as root)`;
  if (!existsSync(SYSTEM_PYTHON)) return missing;
  return execFileAsync(SYSTEM_PYTHON, ['-I', FILTER_SCRIPT, out]).then(() => null, (err: { stderr?: string }) =>
    /No module named .seccomp/.test(err.stderr ?? '') ? missing : `the syscall filter could not be built (${(err.stderr ?? '').trim().split('\n').at(-1)})`);
}

/** The slirp4netns on PATH, or null: what egress-only networking needs. */
export function findSlirp(path = process.env.PATH ?? ''): string | null {
  return onPath('slirp4netns', path);
}

/** Why a box cannot have egress-only networking here (`flag` asked for it), as one line naming the fix, or null. */
export function egressProblem(flag: string, hostFlag: string, path = process.env.PATH ?? ''): string | null {
  if (findSlirp(path)) return null;
  return `${flag} needs slirp4netns (egress without this host's loopback): install the package "${EGRESS_PACKAGE}" ` +
    `(npx autoresearch provision does, as root), or use ${hostFlag} to share this host's network, loopback included`;
}

/** Provisioning: slirp4netns, the uplink of egress-only boxes (--network, --agent-network); where it is, or null. */
export function ensureEgress(log: Log = console.log, path = process.env.PATH ?? ''): Promise<string | null> {
  const howTo = `install the package "${EGRESS_PACKAGE}" from your distribution`;
  return ensurePackage(EGRESS_PACKAGE, 'egress-only networking for boxes', () => findSlirp(path), howTo, log, path);
}

/** Why no box can be made here, as one line naming the fix, or null when bwrap works. */
export function sandboxProblem(path = process.env.PATH ?? ''): string | null {
  const bwrap = findBwrap(path);
  const accept = 'or start the GPU worker with --no-sandbox to accept running proposed code unconfined';
  const install = `install the package "${SANDBOX_PACKAGE}" (e.g. apt-get install ${SANDBOX_PACKAGE})`;
  if (!bwrap) return `bwrap is not installed: ${install}, ${accept}`;
  const box = ['--unshare-all', '--die-with-parent', '--cap-drop', 'ALL', '--ro-bind', '/', '/', '--proc', '/proc'];
  const probe = spawnSync(bwrap, [...box, '--dev', '/dev', 'true'], { encoding: 'utf8', timeout: PROBE_TIMEOUT_MS });
  if (probe.status === 0) {
    return !boxUser() || onPath('setpriv', path) ? null : `setpriv is not installed (util-linux): a worker running as root needs it to start its boxes as an unprivileged user; install util-linux, ${accept}`;
  }
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
export function ensureBubblewrap(log: Log = console.log, path = process.env.PATH ?? ''): Promise<string | null> {
  const howTo = `install the package "${SANDBOX_PACKAGE}" from your distribution (it works unprivileged with user namespaces)`;
  return ensurePackage(SANDBOX_PACKAGE, 'the training sandbox', () => findBwrap(path), howTo, log, path);
}

/** Provisioning: the system Python's libseccomp, which builds the box's syscall filter; where it is, or null. */
export function ensureSyscallFilter(log: Log = console.log, path = process.env.PATH ?? ''): Promise<string | null> {
  const howTo = `install the package "${SECCOMP_PACKAGE}" from your distribution`;
  return ensurePackage(SECCOMP_PACKAGE, "the box's syscall filter", seccompModule, howTo, log, path);
}

function seccompModule(): string | null {
  const probe = spawnSync(SYSTEM_PYTHON, ['-I', '-c', 'import seccomp; print(seccomp.__file__)'], { encoding: 'utf8', timeout: PROBE_TIMEOUT_MS });
  return probe.status === 0 ? probe.stdout.trim() : null;
}

async function ensurePackage(pkg: string, role: string, found: () => string | null, howTo: string, log: Log, path: string) {
  const present = found(); // a probe each time (seccomp's spawns a Python): once when it is there already
  if (present) return present;
  const aptGet = process.getuid?.() === 0 ? onPath('apt-get', path) : null;
  if (!aptGet) {
    log(`${pkg} (${role}) is missing: ${howTo}`);
    return null;
  }
  log(`installing ${pkg} (${role}) with apt-get`);
  const install = ['install', '-y', '--no-install-recommends', pkg];
  const installed = async () => runQuietly(aptGet, install, log);
  const ok = (await installed()) || ((await runQuietly(aptGet, ['update'], log)) && (await installed())); // stale lists
  if (!ok || !found()) log(`could not install ${pkg}: ${howTo}`);
  return found();
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
  network: Network;
  networkAllow?: string[]; // with 'egress': CIDRs it may reach besides the internet
  env: Record<string, string>;
  readOnlyScratch?: boolean; // the evaluation's boxes
  validation?: 'shown' | 'hidden'; // default shown; hidden from the training of a target that declares `evaluate`
  channel?: string; // a directory shown read-only (the evaluation's pipes, which stay writable)
  tmpfsBytes?: number; // the size of each in-memory folder of the box
  filtered?: boolean; // its command gets the syscall filter on FILTER_FD
  gpuMinor?: number; // the slot's GPU, as /dev/nvidiaN numbers it: the only GPU node the box gets
  noGpu?: boolean; // the agent proposer's box: no GPU node at all
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

let resolver: Promise<[string, string]> | undefined;

/**
 * An egress box's resolv.conf, naming slirp4netns's forwarder (the host's own resolver may sit in a
 * range the box may not reach, or on its loopback), shown where the host's /etc/resolv.conf leads.
 */
function egressResolver(): Promise<[string, string]> {
  resolver ??= workerScratch().then(async (dir) => {
    const file = join(dir, 'resolv.conf');
    await writeFile(file, `nameserver ${SLIRP_DNS}\n`, { mode: 0o644 });
    return [file, realPath('/etc/resolv.conf') ?? '/etc/resolv.conf'];
  });
  return resolver;
}

/** What a command runs inside (runCommand's `box`, `egress`): bwrap with the box's arguments, then `after` (the limits), and an egress box's uplink. */
export async function boxCommand(req: BoxRequest, after: string[]): Promise<{ box: string[]; egress?: Egress }> {
  const box = [findBwrap() ?? 'bwrap', ...bwrapArgs(await planBox(req)), ...after];
  if (req.network !== 'egress') return { box };
  return { box, egress: { slirp4netns: findSlirp() ?? 'slirp4netns', allow: req.networkAllow ?? [] } };
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
    system: systemDirs(),
    user: boxUser(),
    scratch: realPath(req.scratch) ?? req.scratch,
    readOnlyScratch: req.readOnlyScratch,
    hide: [
      ...existing([...homes, projectRoot(), req.scratchRoot, ...family]),
      ...(req.validation === 'hidden' ? validationPaths() : []),
    ],
    private: ['/tmp', BOX_HOME],
    tmpfsBytes: req.tmpfsBytes,
    readOnly: existing([cacheDir(), pythonEnv, base, req.channel]),
    // Repos laid out like the original look for their data in ~/.cache/autoresearch: the box's HOME has it.
    aliases: [
      ...existing([cacheDir()]).map((cache): [string, string] => [cache, join(BOX_HOME, '.cache', 'autoresearch')]),
      ...(req.network === 'egress' ? [await egressResolver()] : []),
    ],
    devices: req.noGpu ? [] : gpuDevices('/dev', req.gpuMinor),
    network: req.network,
    filtered: req.filtered,
    env: req.env,
  };
}
