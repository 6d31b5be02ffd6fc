// Egress-only networking for a box: it keeps its own network namespace, and slirp4netns (the user-mode
// network of rootless containers) gives it an uplink through the host's sockets: the internet and the
// host's other addresses, never the host's loopback (`--disable-host-loopback`), so not the Temporal
// server or anything else on localhost. bwrap waits (--block-fd) until the uplink is up.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';

export const EGRESS_PACKAGE = 'slirp4netns';
export const INFO_FD = 5; // bwrap writes its sandbox's pid here (guard.sh keeps 3, the syscall filter is 4)
export const BLOCK_FD = 6; // bwrap waits to read a byte here before it runs the command
const MTU = 65520; // slirp4netns's fastest

/** bwrap's arguments that make it report its pid and wait for the uplink. */
export function egressArgs(): string[] {
  return ['--info-fd', String(INFO_FD), '--block-fd', String(BLOCK_FD)];
}

/**
 * Starts slirp4netns on the network namespace of the box whose bwrap reports on `info`, then lets the
 * box go on through `block`. A failed uplink still lets it go on, with no network at all, and says why.
 * Returns what takes the uplink down (slirp4netns also exits when this process dies: its exit pipe closes).
 */
export function connectEgress(info: Readable, block: Writable, slirp4netns: string, problem: (line: string) => void): () => void {
  let report = '';
  let uplink: ChildProcess | null = null;
  let stopped = false;
  const release = () => {
    if (!block.writableEnded) block.end('1');
  };
  info.on('error', () => {});
  block.on('error', () => {});
  info.on('data', (chunk: Buffer) => {
    if (uplink || stopped) return;
    report += chunk.toString();
    let pid: unknown;
    try {
      pid = (JSON.parse(report) as { 'child-pid'?: unknown })['child-pid'];
    } catch {
      return; // not whole yet
    }
    const args = ['--configure', `--mtu=${MTU}`, '--disable-host-loopback', '--enable-sandbox', '--enable-seccomp',
      '--ready-fd=3', '--exit-fd=4', String(pid), 'tap0'];
    uplink = spawn(slirp4netns, args, { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] });
    const failed = (why: string) => {
      if (!stopped) problem(`autoresearch: the box's network could not be set up (${why}); it ran with no network`);
      release();
    };
    uplink.stdio[3]!.once('data', release);
    uplink.stdio[3]!.on('error', () => {});
    uplink.stdio[4]!.on('error', () => {});
    uplink.on('error', (err) => failed(err.message));
    uplink.on('exit', (code) => failed(`slirp4netns exited with ${code}`));
  });
  return () => {
    stopped = true;
    uplink?.stdio[4]?.destroy();
    uplink?.kill();
  };
}
