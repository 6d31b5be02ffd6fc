// One way to reach Temporal for every verb: the envconfig conventions (TEMPORAL_ADDRESS,
// TEMPORAL_NAMESPACE, temporal.toml profiles, API key or mTLS), defaulting to localhost:7233.
import { Client, Connection } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { UserError } from './errors';

export const DEFAULT_ADDRESS = 'localhost:7233';
const CONNECT_TIMEOUT_MS = 5_000;

export interface Target {
  address: string;
  namespace: string;
  options: ReturnType<typeof loadClientConnectConfig>['connectionOptions'];
}

/**
 * Worker logs at WARN and above, without the SDK's note that a GPU worker (activities only) polls
 * no workflow tasks: the demo's output and the tests' should be rows and results, not chatter.
 */
export function quietWorkerLogs(): void {
  const log = (entry: { level: string; message: string; meta?: unknown }) => {
    if (entry.message.startsWith('No workflows registered')) return;
    const meta = entry.meta ? ` ${JSON.stringify(entry.meta, (_, v) => (v instanceof Error ? v.message : v))}` : '';
    console.error(`${entry.level} ${entry.message}${meta}`);
  };
  Runtime.install({ logger: new DefaultLogger('WARN', log) });
}

export function temporalTarget(): Target {
  const { connectionOptions, namespace } = loadClientConnectConfig();
  const address = connectionOptions.address ?? DEFAULT_ADDRESS;
  return { address, namespace: namespace ?? 'default', options: { ...connectionOptions, address } };
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

export async function connectWorker(target = temporalTarget()): Promise<NativeConnection> {
  try {
    return await NativeConnection.connect(target.options);
  } catch (err) {
    throw unreachable(target, err);
  }
}
