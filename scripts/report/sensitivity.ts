// The sensitivity chart and table, as `sensitivity` measured it (sensitivity.json beside the results): one
// panel per knob, most sensitive first, each value of its grid a dot (the mean) on a bar (its 95% interval),
// the best's own value and the leads (values that beat it beyond the noise) in colours of their own.
import type { TopLevelSpec } from 'vega-lite/build/index';
import { formatScore } from '../../activities/results';
import type { Sensitivity } from '../../workflows/types';
import { finite } from './ablation';
import { FONT } from './render';

export const SENSITIVITY_SVG = 'sensitivity.svg';
export const SENSITIVITY_PNG = 'sensitivity.png';

const PANEL_WIDTH = 420;
const PANEL_HEIGHT = 150;
const ROLES = ["the best's value", 'lead', 'other value'] as const;
const ROLE_COLORS = ['#1b5e20', '#ff7f0e', '#1f77b4'];

type Knob = Sensitivity['knobs'][number];

const roleOf = (k: Knob, value: string) => (value === k.value ? ROLES[0] : k.leads.includes(value) ? ROLES[1] : ROLES[2]);

const verdictOf = (k: Knob) =>
  `${k.sensitive ? 'sensitive' : 'not sensitive'}: spread ${formatScore(k.spread)}, ${k.aboveNoise.toFixed(1)}× the noise, p=${k.pHolm.toPrecision(2)}`;

function panel(k: Knob) {
  const x = { field: 'value', type: 'ordinal' as const, sort: k.points.map((p) => p.value), axis: { title: k.knob, labelAngle: 0 } };
  const y = { type: 'quantitative' as const, scale: { zero: false, nice: true }, axis: { title: 'val_bpb', format: '.4f' } };
  const color = {
    field: 'role', type: 'nominal' as const, scale: { domain: [...ROLES], range: ROLE_COLORS },
    legend: { title: null, orient: 'top' as const, direction: 'horizontal' as const },
  };
  const values = (keep: (p: Knob['points'][number]) => boolean) => k.points.filter(keep).map((p) => ({
    value: p.value, role: roleOf(k, p.value), mean: p.mean, low: p.low, high: p.high,
    aria: `${k.knob} = ${p.value}: val_bpb ${formatScore(p.mean)} (n=${p.n}), ${roleOf(k, p.value)}`,
  }));
  return {
    title: { text: `${k.knob}: ${verdictOf(k)}`, fontSize: 12, anchor: 'start' as const },
    width: PANEL_WIDTH,
    height: PANEL_HEIGHT,
    layer: [
      {
        data: { values: values((p) => finite(p.low) && finite(p.high)) },
        mark: { type: 'rule' as const, strokeWidth: 2.5, aria: false },
        encoding: { x, y: { ...y, field: 'low' }, y2: { field: 'high' }, color },
      },
      {
        data: { values: values((p) => p.n > 0) },
        mark: { type: 'point' as const, shape: 'circle', filled: true, size: 80, stroke: 'black', strokeWidth: 0.8 },
        encoding: { x, y: { ...y, field: 'mean' }, color, description: { field: 'aria' } },
      },
    ],
  };
}

/** The Vega-Lite spec of sensitivity.svg: a panel per knob, most sensitive at the top. */
export function sensitivitySpec(s: Sensitivity): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `autoresearch ${s.tag}: which knobs matter`,
      subtitle: [
        `the best (${s.best.commit.slice(0, 7)}) with one knob moved, ${s.runs} runs a value  ·  dot: the mean  ·  bar: its 95% interval`,
      ],
      anchor: 'start',
    },
    background: 'white',
    config: { font: FONT, view: { stroke: '#dddddd' } },
    resolve: { scale: { y: 'independent' } },
    vconcat: s.knobs.map(panel),
  } as TopLevelSpec;
}

/** summary.md's `- sensitivity:` line and its section: a table per knob, the leads named. */
export function sensitivityLines(s: Sensitivity | null): { key: string[]; section: string[] } {
  if (s === null) return { key: [], section: [] };
  const leads = s.knobs.flatMap((k) => k.leads.map((v) => `${k.knob} = ${v}`));
  const half = (low: number, high: number) => (finite(low) && finite(high) ? formatScore((high - low) / 2) : '-');
  return {
    key: [
      `- sensitivity: ${s.line}; chart: ${SENSITIVITY_SVG} (also ${SENSITIVITY_PNG})`,
      ...(leads.length ? [`- leads for the next night: ${leads.join(', ')}`] : []),
    ],
    section: [
      '## Sensitivity',
      '',
      `The best (${s.best.commit.slice(0, 7)}) trained with one knob moved at a time, ${s.runs} runs a value. A knob is`,
      'sensitive where a one-way ANOVA over its values, corrected for all the knobs (Holm), gives p < 0.05; "× the',
      "noise\" is how far its means spread beyond what noise alone gives them (about 1 for a knob that does nothing).",
      'A lead beats the best beyond its 95% band.',
      '',
      ...s.knobs.flatMap((k) => [
        `**${k.knob}** (${k.value} in the best): ${verdictOf(k)}; lowest at ${k.bestValue}`,
        '',
        '| value | val_bpb | ± 95% | runs | |',
        '|---|---|---|---|---|',
        ...k.points.map((p) => `| ${p.value} | ${p.n ? formatScore(p.mean) : '-'} | ${half(p.low, p.high)} | ${p.n} | ${p.value === k.value ? 'the best' : k.leads.includes(p.value) ? 'lead' : ''} |`),
        '',
      ]),
      `![which knobs matter](${SENSITIVITY_SVG})`,
      '',
    ],
  };
}
