// The comparison's chart and table, as `compare` measured it (comparison.json beside the results): per ref a
// dot (the mean) on a bar (its 95% interval), coloured by its rank; the table adds each pair's verdict.
import type { TopLevelSpec } from 'vega-lite/build/index';
import { formatScore } from '../../activities/results';
import type { Comparison } from '../../workflows/types';
import { finite, signed } from './ablation';
import { FONT } from './render';

export const COMPARE_SVG = 'compare.svg';
export const COMPARE_PNG = 'compare.png';

const WIDTH = 560;
const ROW_PX = 34;
const MIN_HEIGHT = 120;
const RANK_COLORS = ['#2ca02c', '#1f77b4', '#ff7f0e', '#9467bd', '#8c564b', '#7f7f7f'];

const rankName = (rank: number) => `rank ${rank}`;

/** The Vega-Lite spec of compare.svg: refs top to bottom in the order given, val_bpb along x. */
export function compareSpec(c: Comparison): TopLevelSpec {
  const bounded = c.refs.filter((r) => finite(r.low) && finite(r.high));
  const ranks = [...new Set(c.refs.map((r) => r.rank))].sort((a, b) => a - b).map(rankName);
  const x = { type: 'quantitative' as const, scale: { zero: false, nice: true }, axis: { title: 'val_bpb (lower is better)', format: '.4f' } };
  const y = { field: 'ref', type: 'nominal' as const, sort: c.refs.map((r) => r.ref), axis: { title: null, labelLimit: 300 } };
  const color = {
    field: 'rank', type: 'nominal' as const, scale: { domain: ranks, range: RANK_COLORS },
    legend: { title: null, orient: 'top' as const, direction: 'horizontal' as const },
  };
  const values = (refs: Comparison['refs']) => refs.map((r) => ({
    ref: r.ref, rank: rankName(r.rank), mean: r.mean, low: r.low, high: r.high,
    aria: `${r.ref} val_bpb ${formatScore(r.mean)} (n=${r.n}), ${rankName(r.rank)}`,
  }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `autoresearch ${c.tag}: refs compared`,
      subtitle: [`${c.runs} runs each on the same seeds  ·  dot: the mean  ·  bar: its 95% interval`, `ranking: ${c.line}`],
      anchor: 'start',
    },
    width: WIDTH,
    height: Math.max(MIN_HEIGHT, c.refs.length * ROW_PX),
    background: 'white',
    config: { font: FONT, view: { stroke: '#dddddd' } },
    layer: [
      {
        name: 'intervals',
        data: { values: values(bounded) },
        mark: { type: 'rule', strokeWidth: 2.5, aria: false },
        encoding: { x: { ...x, field: 'low' }, x2: { field: 'high' }, y, color },
      },
      {
        name: 'means',
        data: { values: values(c.refs.filter((r) => r.n > 0)) },
        mark: { type: 'point', shape: 'circle', filled: true, size: 90, stroke: 'black', strokeWidth: 0.8 },
        encoding: { x: { ...x, field: 'mean' }, y, color, description: { field: 'aria' } },
      },
    ],
  };
}

/** summary.md's `- compare:` line and its section: each ref, then each pair's verdict. */
export function compareLines(c: Comparison | null): { key: string[]; section: string[] } {
  if (c === null) return { key: [], section: [] };
  const half = (low: number, high: number) => (finite(low) && finite(high) ? formatScore((high - low) / 2) : '-');
  return {
    key: [`- compare: ${c.line}; chart: ${COMPARE_SVG} (also ${COMPARE_PNG})`],
    section: [
      '## Compare',
      '',
      `${c.refs.length} refs trained side by side, ${c.runs} runs each on the same fresh seeds. A pair differs`,
      "where Welch's test, corrected for all the pairs (Holm), gives p < 0.05; a ref's rank is one more than the",
      'number of refs really better than it.',
      '',
      '| ref | commit | rank | val_bpb | ± 95% | runs | crashes |',
      '|---|---|---|---|---|---|---|',
      ...c.refs.map((r) => `| ${r.ref} | ${r.commit.slice(0, 7)} | ${r.rank} | ${r.n ? formatScore(r.mean) : '-'} | ${half(r.low, r.high)} | ${r.n} | ${r.crashes} |`),
      '',
      '| better | than | by | 95% interval | p (Holm) | verdict |',
      '|---|---|---|---|---|---|',
      ...c.pairs.map((p) => {
        const d = p.difference;
        const bounds = finite(d.low) && finite(d.high) ? `[${signed(d.low)}, ${signed(d.high)}]` : '-';
        return `| ${p.a} | ${p.b} | ${signed(d.mean)} | ${bounds} | ${p.pHolm.toPrecision(2)} | ${p.real ? 'real' : 'cannot be told apart'} |`;
      }),
      '',
      `![refs compared](${COMPARE_SVG})`,
      '',
    ],
  };
}
