// How every chart of the report is drawn: by Vega-Lite, rendered without a browser (Vega's headless SVG
// renderer) and rasterized by resvg (a prebuilt binary from npm); and the style the charts share.
import { Resvg } from '@resvg/resvg-js';
import { writeFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import type { TopLevelSpec } from 'vega-lite/build/index';

const PNG_SCALE = 2; // the PNG at twice the SVG's size, for sharp text
export const FONT = 'DejaVu Sans, Liberation Sans, Helvetica, Arial, sans-serif';
export const COLORS: Record<string, string> = {
  keep: '#2ca02c', discard: '#9e9e9e', crash: '#d62728', best: '#2ca02c', ring: '#1b5e20',
  helped: '#2ca02c', hurt: '#d62728', unclear: '#9e9e9e', 'not measured': '#8d6e63',
};

/**
 * Vega and Vega-Lite are ES modules with top-level await: they must be loaded with a real import(). A
 * CLI compiled to CommonJS turns import() into require(), which cannot load them; the body of a
 * Function is left alone by every compiler. The path is resolved first, so any working directory works.
 */
const importModule = new Function('url', 'return import(url)') as (url: string) => Promise<unknown>;

async function loadVega() {
  const load = (name: string) => importModule(pathToFileURL(require.resolve(name)).href);
  const vega = (await load('vega')) as typeof import('vega');
  const vegaLite = (await load('vega-lite')) as typeof import('vega-lite/build/index');
  return { vega, vegaLite };
}

/** Any of the report's Vega-Lite charts as SVG. */
export async function renderSvg(chart: TopLevelSpec): Promise<string> {
  const { vega, vegaLite } = await loadVega();
  const { spec } = vegaLite.compile(chart);
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export function svgToPng(svg: string): Buffer {
  const font = { loadSystemFonts: true, sansSerifFamily: 'DejaVu Sans' };
  const resvg = new Resvg(svg, { fitTo: { mode: 'zoom', value: PNG_SCALE }, font });
  return resvg.render().asPng();
}

/** Whether resvg finds a font on this machine; without one, the PNG's text is missing. */
export function pngHasText(): boolean {
  const probe = '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">'
    + '<text x="2" y="16" font-size="16" font-family="sans-serif">Hg</text></svg>';
  const pixels = new Resvg(probe, { font: { loadSystemFonts: true } }).render().pixels;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) return true;
  return false;
}

/** The chart as SVG, and as PNG beside it. */
export async function writeChart(spec: TopLevelSpec, svgPath: string, pngPath: string): Promise<void> {
  const svg = await renderSvg(spec);
  await writeFile(svgPath, svg);
  await writeFile(pngPath, svgToPng(svg));
}

