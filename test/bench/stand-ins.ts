// What the bench puts in place of a GPU and a model: a training that sleeps its budget (no CPU) and
// scores eight knobs, and a model that thinks a set time and then turns one knob of the best version
// it is shown (or always knob A, where every keep conflicts with every queued proposal). One knob value in five helps, so one proposal in four can win at first and fewer as
// knobs settle: simulated, 22% are kept over 5 proposals, 18% over 23, 13% over 50 — the ~15-30%
// public reports give.
import { request, createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { answer, fakeOpenAI, type FakeOpenAI, type Recorded, type Reply } from '../fake-openai';

const KNOBS = 'ABCDEFGH';
const KNOB_VALUES = 5; // 0..4: 0 is neutral, one value helps, the other three hurt
const TOKENS_PER_CALL = 600; // what a short proposal costs a real model, so token totals look like a night's

// Above the score's deterministic jitter (±1e-5): a change that neither helps nor hurts is no keep.
export const MIN_IMPROVEMENT = 1e-4;

// The score is the fixed harness; train.py only holds the knobs, as the original's train.py holds its tunables.
export const HARNESS_PY = `# The bench's fixed harness: the score of a knob setting, jittered like a real night's.
GOOD = [3, 1, 4, 2, 2, 3, 1, 4]  # the one helpful value of each knob
GAIN = [0.012, 0.008, 0.015, 0.005, 0.010, 0.007, 0.004, 0.009]  # bits per byte it saves


def score(knobs):
    bpb = 1.0
    for value, good, gain in zip(knobs, GOOD, GAIN):
        if value == good:
            bpb -= gain
        elif value != 0:
            bpb += gain / 2
    jitter = (sum((i + 1) * 7919 * v for i, v in enumerate(knobs)) % 97 - 48) * 2e-7
    return bpb + jitter
`;

// The same score with seeded noise in place of the jitter: near-ties that confirmation must settle.
export const NOISE_SIGMA = 0.002; // bits per byte, about the spread real nights report between seeds
export const NOISY_HARNESS_PY = HARNESS_PY.replace(
  '    return bpb + jitter',
  `    import os, random
    return bpb + random.Random(int(os.environ["AUTORESEARCH_SEED"])).gauss(0, ${NOISE_SIGMA})`,
);

export const TRAIN_PY = `${[...KNOBS].map((k) => `${k} = 0  # knob ${k.toLowerCase()}`).join('\n')}

import os
import time

from harness import score

start = time.time()
time.sleep(float(os.environ["AUTORESEARCH_TIME_BUDGET"]))  # the GPU's work, without the CPU
end = time.time()
print("---")
print(f"val_bpb:          {score([${[...KNOBS].join(', ')}]):.6f}")
print(f"training_seconds: {end - start:.1f}")
print(f"train_start:      {start:.3f}")
print(f"train_end:        {end:.3f}")
`;

/** program.md of one bench run: the model's think time travels in it, so one server serves every run. */
export function programFor(label: string, thinkSeconds: number, oneKnob = false): string {
  const knobs = oneKnob ? 'turning knob A of train.py (only knob A)' : 'turning the knobs A to H of train.py';
  return `# research: bench run ${label}\n\nMake val_bpb lower by ${knobs}.\n` +
    `The stand-in model thinks ${thinkSeconds} s per proposal.\n`;
}

function thinkSecondsOf(body: string): number {
  const m = /thinks ([\d.]+) s per proposal/.exec(body);
  return m ? Number(m[1]) : 0;
}

/** A small deterministic generator, seeded by a run's name (FNV-1a): a run proposes the same knobs, bench after bench. */
function generator(name: string): () => number {
  let state = 0x811c9dc5;
  for (const c of name) state = Math.imul(state ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t ^= t + Math.imul(t ^ (t >>> 7), 61 | t);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** The best version's train.py, as the proposer's prompt shows it. */
function bestTrainPy(request: Recorded): string | null {
  for (const message of [...request.body.messages].reverse()) {
    const at = message.content.indexOf('# The best version');
    if (at < 0) continue;
    return /```python\n([\s\S]*?)\n```/.exec(message.content.slice(at))?.[1] ?? null;
  }
  return null;
}

/**
 * The model: one knob of the best version set to another value, as a search/replace of its line.
 * Each run draws from its own generator, so runs side by side do not change each other's knobs.
 */
function turnAKnob() {
  const generators = new Map<string, () => number>();
  return (request: Recorded): Reply => {
    const run = request.body.messages.map((m) => /bench run (\S+)/.exec(m.content)?.[1]).find(Boolean) ?? '';
    if (!generators.has(run)) generators.set(run, generator(run));
    const random = generators.get(run)!;
    const file = bestTrainPy(request);
    // One knob (the program says so): every keep changes the line every queued proposal changes.
    const oneKnob = request.body.messages.some((m) => m.content.includes('(only knob A)'));
    const lines = [...(file ?? '').matchAll(oneKnob ? /^(A) = (\d+)\b.*$/gm : /^([A-H]) = (\d+)\b.*$/gm)];
    if (lines.length === 0) {
      return { status: 400, body: JSON.stringify({ error: { message: 'bench model: no knobs in the best version' } }) };
    }
    const [line, knob, current] = lines[Math.floor(random() * lines.length)];
    const value = (Number(current) + 1 + Math.floor(random() * (KNOB_VALUES - 1))) % KNOB_VALUES;
    const edit = { path: 'train.py', search: line, replace: line.replace(`${knob} = ${current}`, `${knob} = ${value}`) };
    return { content: answer(`set ${knob} to ${value}`, [edit]), tokens: TOKENS_PER_CALL };
  };
}

export interface ThinkingModel {
  calls: () => number;
  close(): Promise<void>;
}

/**
 * test/fake-openai.ts answers at once; the bench needs a model that thinks. A front server holds each
 * request for its run's think time, then passes it through, streamed answers included.
 */
export async function thinkingModel(): Promise<ThinkingModel> {
  const fake: FakeOpenAI = await fakeOpenAI();
  fake.fallback = turnAKnob();
  const upstream = new URL(fake.baseURL);
  const waiting = new Set<NodeJS.Timeout>();
  const forward = (req: IncomingMessage, body: Buffer, res: ServerResponse) => {
    const to = { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers };
    const up = request(to, (reply) => {
      res.writeHead(reply.statusCode ?? 502, reply.headers);
      reply.pipe(res);
    });
    up.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(JSON.stringify({ error: { message: `bench model: ${err.message}` } }));
    });
    up.end(body);
  };
  const front = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const timer = setTimeout(() => {
        waiting.delete(timer);
        forward(req, body, res);
      }, thinkSecondsOf(body.toString('utf8')) * 1000);
      waiting.add(timer);
    });
  });
  await new Promise<void>((done) => front.listen(0, '127.0.0.1', done));
  // The control activities read it at call time.
  process.env.OPENAI_BASE_URL = `http://127.0.0.1:${(front.address() as AddressInfo).port}/v1`;
  return {
    calls: () => fake.requests.length,
    close: async () => {
      for (const timer of waiting) clearTimeout(timer);
      front.closeAllConnections();
      await new Promise<void>((done) => front.close(() => done()));
      await fake.close();
    },
  };
}
