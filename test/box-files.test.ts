// Reading what a box left: regular files only, never through a link, never past the cap, and never
// blocking, whatever sits where a harness file was.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { boxFiles, MAX_FILE_BYTES } from '../gpu-worker/files';
import { materialize } from '../gpu-worker/scratch';

function folder(): string {
  return mkdtempSync(join(tmpdir(), 'autoresearch-box-files-'));
}

describe('boxFiles', () => {
  test('reads a regular file with its mode, and says when it is missing', async () => {
    const dir = folder();
    mkdirSync(join(dir, 'lib'));
    writeFileSync(join(dir, 'lib', 'run.sh'), '#!/bin/sh\n');
    chmodSync(join(dir, 'lib', 'run.sh'), 0o4755);
    const read = boxFiles(dir);
    assert.deepEqual(await read('lib/run.sh'), { kind: 'file', content: Buffer.from('#!/bin/sh\n'), mode: 0o755 }, 'no setuid bit');
    assert.deepEqual(await read('prepare.py'), { kind: 'missing' });
    assert.deepEqual(await read('gone/prepare.py'), { kind: 'missing' });
  });

  test('names a FIFO, a socket, a device, a directory and a link instead of reading them, at once', async () => {
    const dir = folder();
    spawnSync('mkfifo', [join(dir, 'fifo.py')]);
    const server = createServer().listen(join(dir, 'socket.py'));
    await once(server, 'listening');
    mkdirSync(join(dir, 'folder.py'));
    writeFileSync(join(dir, 'real.py'), 'X = 1\n');
    symlinkSync('real.py', join(dir, 'link.py')); // harmless, and still not followed
    symlinkSync('/dev/zero', join(dir, 'zero.py'));
    try {
      const read = boxFiles(dir);
      const started = Date.now();
      assert.deepEqual(await read('fifo.py'), { kind: 'refused', why: 'fifo.py is a FIFO' });
      assert.deepEqual(await read('socket.py'), { kind: 'refused', why: 'socket.py is a socket' });
      assert.deepEqual(await read('folder.py'), { kind: 'refused', why: 'folder.py is a directory' });
      assert.deepEqual(await read('link.py'), { kind: 'refused', why: 'link.py is a symbolic link' });
      assert.deepEqual(await read('zero.py'), { kind: 'refused', why: 'zero.py is a symbolic link' });
      assert.deepEqual(await boxFiles('/dev')('zero'), { kind: 'refused', why: 'zero is a device' });
      assert.ok(Date.now() - started < 1_000, `${Date.now() - started} ms`);
    } finally {
      server.close();
    }
  });

  test('refuses a file under a folder that is a link, even to a folder of the same files', async () => {
    const dir = folder();
    mkdirSync(join(dir, 'real', 'deeper'), { recursive: true });
    writeFileSync(join(dir, 'real', 'deeper', 'util.py'), 'X = 1\n');
    symlinkSync('real', join(dir, 'lib'));
    const read = boxFiles(dir);
    assert.deepEqual(await read('lib/deeper/util.py'), { kind: 'refused', why: 'lib is a symbolic link' });
    assert.equal((await read('real/deeper/util.py')).kind, 'file');
  });

  test(`refuses a file over the cap (${MAX_FILE_BYTES >> 20} MB by default) without reading it, and reads one at the cap`, async () => {
    const dir = folder();
    writeFileSync(join(dir, 'sparse.py'), '');
    truncateSync(join(dir, 'sparse.py'), 2 ** 40); // a terabyte of nothing: instant to make, hours to read
    assert.deepEqual(await boxFiles(dir)('sparse.py'), { kind: 'refused', why: `sparse.py is over ${MAX_FILE_BYTES >> 20} MB` });
    writeFileSync(join(dir, 'at.py'), Buffer.alloc(1 << 20, 'a'));
    writeFileSync(join(dir, 'past.py'), Buffer.alloc((1 << 20) + 1, 'a'));
    const read = boxFiles(dir, 1 << 20);
    assert.equal((await read('at.py')).kind, 'file');
    assert.deepEqual(await read('past.py'), { kind: 'refused', why: 'past.py is over 1 MB' });
  });
});

describe('materialize from what a box left', () => {
  test('stops at the first file it must not copy and names it; nothing was read from it', async () => {
    const source = folder();
    const dest = folder();
    writeFileSync(join(source, 'a.py'), 'A = 1\n');
    spawnSync('mkfifo', [join(source, 'prepare.py')]);
    assert.equal(await materialize(source, ['a.py', 'prepare.py'], { files: {} }, dest), 'prepare.py is a FIFO');
    assert.deepEqual(readdirSync(dest), ['a.py']);
  });
});
