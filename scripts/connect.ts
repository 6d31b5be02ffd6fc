// One way to reach Temporal for every verb: the envconfig conventions (TEMPORAL_ADDRESS,
// TEMPORAL_NAMESPACE, temporal.toml profiles, API key or mTLS), defaulting to localhost:7233.
import { Client, Connection } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type * as WorkerPackage from '@temporalio/worker';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UserError } from './errors';

export const DEFAULT_ADDRESS = 'localhost:7233';
const CONNECT_TIMEOUT_MS = 5_000;
const UI_PORT_OFFSET = 1000; // the dev server's Web UI port is its gRPC port + 1000 (`server` does the same)
const LOOPBACK = new Set(['localhost', '127.0.0.1', '::1', '[::1]', '0.0.0.0']);

export interface Target {
  address: string;
  namespace: string;
  options: ReturnType<typeof loadClientConnectConfig>['connectionOptions'];
}

/**
 * The worker package loads a native addon (a quarter of a second): only the verbs that run workers
 * pay for it, never `--help` or `status`.
 */
function workerPackage(): typeof WorkerPackage {
  return require('@temporalio/worker');
}

/**
 * Worker logs at WARN and above, without the SDK's note that a GPU worker (activities only) polls
 * no workflow tasks: the demo's output and the tests' should be rows and results, not chatter.
 */
export function quietWorkerLogs(): void {
  const { DefaultLogger, Runtime } = workerPackage();
  const log = (entry: { level: string; message: string; meta?: unknown }) => {
    if (entry.message.startsWith('No workflows registered')) return;
    const meta = entry.meta ? ` ${JSON.stringify(entry.meta, (_, v) => (v instanceof Error ? v.message : v))}` : '';
    console.error(`${entry.level} ${entry.message}${meta}`);
  };
  Runtime.install({ logger: new DefaultLogger('WARN', log) });
}

/** Where envconfig reads profiles from, for the message when that file is wrong. */
function configFile(env = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return env.TEMPORAL_CONFIG_FILE || join(base, 'temporalio', 'temporal.toml');
}

// What the SDK says about itself at every start: true, and of no use to someone watching a study.
const SDK_CHATTER = /^(No (workflows|activities|Nexus services) registered|Worker state changed)/;

/**
 * The `worker` and `gpu-worker` processes' log: every line the activities log (one per experiment,
 * what a proposer or a training did) as `time message`, warnings and errors with their details,
 * without the SDK's notes on its own start.
 */
export function workerLogs(write: (line: string) => void = (line) => console.log(line)): void {
  const { DefaultLogger, Runtime } = workerPackage();
  const log = (entry: { level: string; message: string; meta?: unknown }) => {
    if (SDK_CHATTER.test(entry.message)) return;
    const time = new Date().toTimeString().slice(0, 8);
    const detail = entry.level === 'WARN' || entry.level === 'ERROR';
    const meta = detail && entry.meta ? ` ${JSON.stringify(entry.meta, (_, v) => (v instanceof Error ? v.message : v))}` : '';
    write(`${time} ${detail ? `${entry.level} ` : ''}${entry.message}${meta}`);
  };
  Runtime.install({ logger: new DefaultLogger('INFO', log) });
}

export function temporalTarget(): Target {
  let loaded: ReturnType<typeof loadClientConnectConfig>;
  try {
    loaded = loadClientConnectConfig();
  } catch (err) {
    const why = (err as Error).message.split('\n')[0].replace(/^Invalid TOML document: /, '');
    const profile = process.env.TEMPORAL_PROFILE ? ` (TEMPORAL_PROFILE=${process.env.TEMPORAL_PROFILE})` : '';
    throw new UserError(`cannot read the Temporal connection settings${profile} from ${configFile()}: ${why}`);
  }
  const { connectionOptions, namespace } = loaded;
  const address = connectionOptions.address ?? DEFAULT_ADDRESS;
  return { address, namespace: namespace ?? 'default', options: { ...connectionOptions, address } };
}

/**
 * The Web UI's address for the server at `address`: AUTORESEARCH_UI when set, else for a server on
 * this host its port + 1000 (the dev server's convention); null when there is no honest guess.
 */
export function webUiBase(address: string, env = process.env): string | null {
  if (env.AUTORESEARCH_UI) return env.AUTORESEARCH_UI.replace(/\/+$/, '');
  const match = /^(.*):(\d+)$/.exec(address);
  if (!match || !LOOPBACK.has(match[1])) return null;
  const host = match[1] === '0.0.0.0' ? 'localhost' : match[1];
  return `http://${host}:${Number(match[2]) + UI_PORT_OFFSET}`;
}

function unreachable(target: Target, err: unknown): UserError {
  const why = (err as Error).message.split('\n')[0];
  return new UserError(`cannot reach the Temporal server at ${target.address} (${why}); start one with \`npx autoresearch server\` or set TEMPORAL_ADDRESS`);
}

export async function connectClient(target = temporalTarget()): Promise<Client> {
  try {
    const connection = await Connection.connect({ ...target.options, connectTimeout: CONNECT_TIMEOUT_MS });
    return new Client({ connection, namespace: target.namespace });
  } catch (err) {
    throw unreachable(target, err);
  }
}

export async function connectWorker(target = temporalTarget()): Promise<WorkerPackage.NativeConnection> {
  try {
    return await workerPackage().NativeConnection.connect(target.options);
  } catch (err) {
    throw unreachable(target, err);
  }
}
