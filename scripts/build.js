// The CLI compiled once instead of at every call: each TypeScript source is transformed by esbuild
// (the transform tsx would apply on the fly) into build/current/, beside a digest of the exact
// sources it was made from. `autoresearch.js` runs that build only when the digest still matches
// the sources on disk, and rebuilds it (a fraction of a second) when they changed, so stale code
// never runs. Plain JavaScript: it must work before anything is compiled.
'use strict';
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const { dirname, join, relative } = require('node:path');

const ROOT = join(__dirname, '..');
const BUILD_DIR = join(ROOT, 'build');
const CURRENT = join(BUILD_DIR, 'current');
const LOCK = join(BUILD_DIR, '.lock');
const STAMP = '.sources-sha256';
const SOURCE_DIRS = ['activities', 'gpu-worker', 'scripts', 'workflows'];
const ROOT_FILES = ['program.md']; // read beside the compiled code through __dirname (init copies it)
const RECIPE_FILES = ['tsconfig.json', 'scripts/build.js']; // a change to how we build rebuilds too
const SKIPPED = new Set(['__pycache__', 'node_modules']);
const STALE_LOCK_MS = 60_000; // a build takes about a second: an older lock was left by a killed process
const WAIT_FOR_BUILD_MS = 20_000; // another process building the same sources: wait for it, up to this

/** Every file under the source folders, sorted: .ts files are compiled, the rest linked. */
function sourceFiles() {
  const files = [];
  const walk = (rel) => {
    for (const entry of fs.readdirSync(join(ROOT, rel), { withFileTypes: true })) {
      if (SKIPPED.has(entry.name)) continue;
      const path = `${rel}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else files.push(path);
    }
  };
  for (const dir of SOURCE_DIRS) walk(dir);
  return files.sort();
}

/** The sources as they are now: their paths, the content of every .ts file and of the recipe. */
function snapshot() {
  const hash = createHash('sha256');
  const compiled = new Map();
  for (const path of sourceFiles()) {
    hash.update(`${path}\0`);
    if (!path.endsWith('.ts')) continue;
    const text = fs.readFileSync(join(ROOT, path), 'utf8');
    compiled.set(path, text);
    hash.update(`${text}\0`);
  }
  for (const file of RECIPE_FILES) hash.update(`${file}\0${fs.readFileSync(join(ROOT, file), 'utf8')}\0`);
  return { digest: hash.digest('hex'), compiled };
}

function readStamp() {
  try {
    return fs.readFileSync(join(CURRENT, STAMP), 'utf8');
  } catch {
    return null;
  }
}

/** Takes the build lock, or answers false when another process holds a recent one. */
function lock() {
  fs.mkdirSync(BUILD_DIR, { recursive: true });
  try {
    fs.mkdirSync(LOCK);
    return true;
  } catch (err) {
    if (err.code !== 'EEXIST') throw err;
    if (Date.now() - fs.statSync(LOCK).mtimeMs < STALE_LOCK_MS) return false;
    fs.rmSync(LOCK, { recursive: true, force: true });
    return lock();
  }
}

/**
 * Takes the lock, waiting while another process (several CLI calls started at once) builds; false
 * when that one finished our build meanwhile, or the wait ran out.
 */
function waitForLock(digest) {
  const deadline = Date.now() + WAIT_FOR_BUILD_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  while (!lock()) {
    if (readStamp() === digest || Date.now() > deadline) return false;
    Atomics.wait(pause, 0, 0, 50); // a synchronous sleep: the CLI cannot start before its build exists
  }
  return true;
}

/** Writes a complete build of `snap` in a fresh folder, then swaps it in: readers never see half a build. */
function writeBuild(snap) {
  const esbuild = require('esbuild');
  const tsconfigRaw = JSON.parse(fs.readFileSync(join(ROOT, 'tsconfig.json'), 'utf8'));
  const target = `node${process.versions.node.split('.')[0]}`;
  const tmp = fs.mkdtempSync(join(BUILD_DIR, '.tmp-'));
  fs.chmodSync(tmp, 0o755); // mkdtemp makes it private; every user of the install runs it
  for (const path of sourceFiles()) {
    const out = join(tmp, path);
    fs.mkdirSync(dirname(out), { recursive: true });
    if (snap.compiled.has(path)) {
      // import() becomes require(): Node's ESM loader would not find extensionless CommonJS paths.
      const options = { loader: 'ts', format: 'cjs', target, sourcefile: path, tsconfigRaw, supported: { 'dynamic-import': false } };
      const { code } = esbuild.transformSync(snap.compiled.get(path), options);
      fs.writeFileSync(out.replace(/\.ts$/, '.js'), code);
    } else {
      // Relative links keep working after the swap; a script or target added later is seen at once.
      fs.symlinkSync(relative(dirname(join(CURRENT, path)), join(ROOT, path)), out);
    }
  }
  for (const file of ROOT_FILES) fs.symlinkSync(relative(CURRENT, join(ROOT, file)), join(tmp, file));
  fs.writeFileSync(join(tmp, STAMP), snap.digest);
  const old = `${tmp}-old`;
  if (fs.existsSync(CURRENT)) fs.renameSync(CURRENT, old);
  fs.renameSync(tmp, CURRENT);
  fs.rmSync(old, { recursive: true, force: true });
}

/**
 * The compiled CLI's entry, built first if the sources changed since the last build; null when no
 * build can be made here (another process is building, a read-only install, no esbuild): the caller
 * then compiles on the fly.
 */
function freshCli() {
  try {
    const snap = snapshot();
    if (readStamp() === snap.digest) return join(CURRENT, 'scripts', 'cli.js');
    if (!waitForLock(snap.digest)) return readStamp() === snap.digest ? join(CURRENT, 'scripts', 'cli.js') : null;
    try {
      if (readStamp() !== snap.digest) writeBuild(snap);
    } finally {
      fs.rmSync(LOCK, { recursive: true, force: true });
    }
    return join(CURRENT, 'scripts', 'cli.js');
  } catch {
    return null;
  }
}

module.exports = { freshCli, BUILD_DIR, CURRENT };

// `npm install` (prepare) and `npm run build`: build now, and say so when it cannot.
if (require.main === module) {
  const started = Date.now();
  const cli = freshCli();
  if (!cli) {
    console.error('autoresearch: could not compile the CLI to build/ (it will compile on the fly at each call)');
    process.exitCode = 1;
  } else {
    console.log(`autoresearch: CLI compiled in ${relative(ROOT, CURRENT)}/ (${Date.now() - started} ms)`);
  }
}
