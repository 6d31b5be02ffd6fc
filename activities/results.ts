// results.tsv (the original's five columns, so existing analysis reads it) and results.jsonl
// (everything else), both in the research repo's working directory, both appended idempotently.
import { createHash } from 'node:crypto';
import { appendFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NO_COMMIT, RESULTS_JSONL, RESULTS_TSV, type ExperimentRecord } from '../workflows/types';

export const TSV_HEADER = 'commit\tval_bpb\tmemory_gb\tstatus\tdescription';

export function tsvRow(r: ExperimentRecord): string {
  const description = r.description.replace(/[\t\r\n]+/g, ' ').trim();
  return [(r.commit ?? NO_COMMIT).slice(0, 7), (r.valBpb ?? 0).toFixed(6), r.memoryGb.toFixed(1), r.status, description].join('\t');
}

export function jsonLine(r: ExperimentRecord): string {
  const logTailDigest = r.logTail ? createHash('sha256').update(r.logTail).digest('hex').slice(0, 16) : undefined;
  return JSON.stringify({ ...r, logTailDigest });
}

async function readLines(path: string): Promise<string[]> {
  try {
    return (await readFile(path, 'utf8')).split('\n').filter(Boolean);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export async function readRecords(repo: string): Promise<ExperimentRecord[]> {
  return (await readLines(join(repo, RESULTS_JSONL))).map((line) => JSON.parse(line) as ExperimentRecord);
}

/**
 * Appends one experiment to both files. Safe to repeat after a crash at any point: the jsonl record
 * is found by id, and the tsv, whose rows match the jsonl lines one for one, gets its row only if it
 * is still one short. Records are written one at a time (the workflow serializes them).
 */
export async function appendRecord(repo: string, record: ExperimentRecord): Promise<void> {
  const jsonlPath = join(repo, RESULTS_JSONL);
  const tsvPath = join(repo, RESULTS_TSV);
  const records = await readRecords(repo);
  let index = records.findIndex((r) => r.id === record.id);
  if (index < 0) {
    await appendFile(jsonlPath, jsonLine(record) + '\n');
    index = records.length;
  }
  const tsv = await readLines(tsvPath);
  if (tsv.length === 0) await appendFile(tsvPath, TSV_HEADER + '\n');
  const rows = Math.max(0, tsv.length - 1);
  if (rows <= index) await appendFile(tsvPath, tsvRow(record) + '\n');
}
