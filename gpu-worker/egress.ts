// Egress-only networking for a box: it keeps its own network namespace, and slirp4netns (the user-mode
// network of rootless containers) gives it an uplink through the host's sockets to the internet: never
// the host's loopback (`--disable-host-loopback`), so not the Temporal server or anything else on
// localhost, and no private, link-local (cloud metadata) or multicast range, which get `prohibit`
// routes in the box's namespace (the box has no capability to remove them) unless allowed by CIDR.
// Names resolve through slirp4netns's forwarder (planBox shows the box a resolv.conf naming it).
// bwrap waits (--block-fd) until all of it is in place.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';

export const EGRESS_PACKAGE = 'slirp4netns';
export const INFO_FD = 5; // bwrap writes its sandbox's pid here (guard.sh keeps 3, the syscall filter is 4)
export const BLOCK_FD = 6; // bwrap waits to read a byte here before it runs the command
const MTU = 65520; // slirp4netns's fastest
export const SLIRP_DNS = '10.0.2.3'; // slirp4netns's forwarder to the host's resolver
const GATEWAY = '10.0.2.2'; // slirp4netns's gateway, the way out
// Refused unless allowed: private (RFC 1918), carrier-grade NAT, link-local (169.254.169.254 serves cloud
// credentials), multicast, "this network". slirp4netns's own 10.0.2.0/24 is more specific, so stays reachable.
export const PROHIBITED = ['0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '169.254.0.0/16', '172.16.0.0/12', '192.168.0.0/16', '224.0.0.0/4'];
const CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d|[12]\d|3[0-2])$/;
const execFileAsync = promisify(execFile);

/** Whether `text` is an IPv4 CIDR such as 192.168.1.0/24. */
export const isCidr = (text: string) => CIDR.test(text) && text.split('/')[0].split('.').every((n) => Number(n) <= 255);

/** What the box's network may reach besides the internet: CIDRs (`--network-allow`). */
export interface Egress {
  slirp4netns: string;
  allow: string[];
}

/** The routes that hold the box to the internet: prohibit the ranges, then the allowed ones through the gateway (longer prefixes win). */
async function holdToInternet(pid: number, allow: string[]): Promise<void> {
  // As root, nsenter joins the box's network namespace; as a user, its user namespace too (where it holds the caps).
  const enter = ['--net=/proc/' + pid + '/ns/net', ...(process.getuid?.() === 0 ? [] : ['--user=/proc/' + pid + '/ns/user', '--preserve-credentials'])];
  for (const cidr of PROHIBITED) await execFileAsync('nsenter', [...enter, 'ip', 'route', 'add', 'prohibit', cidr]);
  for (const cidr of allow) await execFileAsync('nsenter', [...enter, 'ip', 'route', 'add', cidr, 'via', GATEWAY, 'dev', 'tap0']);
}

/** bwrap's arguments that make it report its pid and wait for the uplink. */
export function egressArgs(): string[] {
  return ['--info-fd', String(INFO_FD), '--block-fd', String(BLOCK_FD)];
}

/**
 * Starts slirp4netns on the network namespace of the box whose bwrap reports on `info`, then lets the
 * box go on through `block`. A failed uplink still lets it go on, with no network at all, and says why.
 * Returns what takes the uplink down (slirp4netns also exits when this process dies: its exit pipe closes).
 */
export function connectEgress(info: Readable, block: Writable, egress: Egress, problem: (line: string) => void): () => void {
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
    uplink = spawn(egress.slirp4netns, args, { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] });
    const failed = (why: string) => {
      if (!stopped) problem(`autoresearch: the box's network could not be set up (${why}); it ran with no network`);
      stopped = true;
      uplink?.kill(); // fail closed: no uplink rather than one without the routes
      release();
    };
    uplink.stdio[3]!.once('data', () =>
      holdToInternet(Number(pid), egress.allow).then(release, (err: { stderr?: string; message: string }) => failed((err.stderr || err.message).trim().split('\n')[0])));
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
