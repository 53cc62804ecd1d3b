// uPlot charts of the analytics page. Each chart is created once and fed with `setData`
// afterwards (a refresh of a 24-hour series is a redraw, not a new chart).
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { CAUSE_STYLE, bandRects, formatMs, type CauseBand, type ChartData } from './analytics';
import { paddedXRange } from './channelAnalytics';

const AXIS = { stroke: '#8b93a7', grid: { stroke: '#262a33', width: 1 }, ticks: { stroke: '#262a33', width: 1 } };
const HEIGHT = 220;
const X: uPlot.Scale = { time: true };

/**
 * Shows every minute of the data on x. Set explicitly: uPlot's own auto-range widens a
 * lone minute (a stream's first) to years; a lone minute gets a minute either side.
 * A spec's own `xRange` wins.
 */
function fitX(u: uPlot, spec: ChartSpec): void {
  const xs = u.data[0];
  if (!xs.length) return;
  const own = spec.xRange?.(xs);
  if (own) {
    u.setScale('x', own);
    return;
  }
  const min = xs[0];
  const max = xs[xs.length - 1];
  u.setScale('x', min === max ? { min: min - 60, max: max + 60 } : { min, max });
}

const fixed = (digits: number, unit = '') => (_u: uPlot, v: number | null) => (v == null ? '–' : `${v.toFixed(digits)}${unit}`);
const ms = (_u: uPlot, v: number | null) => formatMs(v);

/** What differs between the charts (series, scales, axes); the rest is shared. */
export interface ChartSpec {
  series: uPlot.Series[];
  axes: uPlot.Axis[];
  scales: uPlot.Scales;
  /** The x range for these x values (default: from the first to the last). */
  xRange?: (xs: ArrayLike<number>) => { min: number; max: number } | null;
}

export const VIEWERS_CHART: ChartSpec = {
  scales: { x: X, viewers: { range: (_u, _min, max) => [0, Math.max(1, max)] }, perMin: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
  series: [
    {},
    { label: 'Viewers (max)', scale: 'viewers', stroke: '#30a46c', width: 2, value: fixed(0) },
    { label: 'Viewers (avg)', scale: 'viewers', stroke: '#8fd4a8', width: 1, dash: [4, 3], value: fixed(1) },
    { label: 'Chat / min', scale: 'perMin', stroke: '#5b8cff', width: 1.5, value: fixed(0) },
    { label: 'Reactions / min', scale: 'perMin', stroke: '#d66bd6', width: 1.5, value: fixed(0) },
  ],
  axes: [
    { ...AXIS },
    { ...AXIS, scale: 'viewers', label: 'viewers' },
    { ...AXIS, scale: 'perMin', side: 1, grid: { show: false }, label: 'per minute' },
  ],
};

export const QOE_CHART: ChartSpec = {
  scales: { x: X, ms: { range: (_u, _min, max) => [0, Math.max(1000, max)] }, pct: { range: (_u, _min, max) => [0, Math.max(5, max)] } },
  series: [
    {},
    { label: 'Startup p50', scale: 'ms', stroke: '#f5a524', width: 2, value: ms },
    { label: 'Rebuffering', scale: 'pct', stroke: '#e5484d', width: 2, value: fixed(1, '%') },
    { label: 'Latency p50', scale: 'ms', stroke: '#5b8cff', width: 2, value: ms },
    { label: 'Latency p95', scale: 'ms', stroke: '#9db8ff', width: 1, dash: [4, 3], value: ms },
  ],
  axes: [
    { ...AXIS },
    { ...AXIS, scale: 'ms', label: 'ms', size: 60 },
    { ...AXIS, scale: 'pct', side: 1, grid: { show: false }, label: 'rebuffer %', values: (_u, splits) => splits.map((v) => `${v}%`) },
  ],
};

export const INGEST_CHART: ChartSpec = {
  scales: { x: X, kbps: { range: (_u, _min, max) => [0, Math.max(100, max)] }, fps: { range: (_u, _min, max) => [0, Math.max(30, max)] }, level: { range: (_u, _min, max) => [0, Math.max(2, max)] } },
  series: [
    {},
    { label: 'Input', scale: 'kbps', stroke: '#30a46c', width: 2, value: fixed(0, ' kbps') },
    { label: 'fps', scale: 'fps', stroke: '#5b8cff', width: 1.5, value: fixed(1) },
    { label: 'Encoder speed (min)', scale: 'level', stroke: '#f5a524', width: 1.5, value: fixed(2, '×') },
    { label: 'Governor level', scale: 'level', stroke: '#e5484d', width: 1.5, paths: uPlot.paths.stepped?.({ align: 1 }), value: fixed(0) },
  ],
  axes: [
    { ...AXIS },
    { ...AXIS, scale: 'kbps', label: 'kbps', size: 60 },
    { ...AXIS, scale: 'fps', side: 1, grid: { show: false }, label: 'fps' },
    { ...AXIS, scale: 'level', side: 1, grid: { show: false }, label: 'speed × / level' },
  ],
};

/** The channel page's chart: one bar (views) and one dot (peak viewers) per stream, at its start. */
export const CHANNEL_CHART: ChartSpec = {
  scales: { x: X, count: { range: (_u, _min, max) => [0, Math.max(1, Math.ceil(max * 1.1))] } },
  series: [
    { label: 'Stream start' },
    { label: 'Views', scale: 'count', stroke: '#5b8cff', fill: 'rgba(91, 140, 255, 0.45)', width: 1, paths: uPlot.paths.bars?.({ size: [0.6, 28] }), points: { show: false }, value: fixed(0) },
    { label: 'Peak viewers', scale: 'count', stroke: '#30a46c', width: 0, paths: () => null, points: { show: true, size: 8, fill: '#30a46c' }, value: fixed(0) },
  ],
  axes: [{ ...AXIS }, { ...AXIS, scale: 'count', label: 'views / viewers' }],
  xRange: paddedXRange,
};

/** Shades the minutes whose QoE dropped, under the series, colored by cause. */
function causeBandsPlugin(getBands: () => readonly CauseBand[]): uPlot.Plugin {
  return {
    hooks: {
      drawClear: (u: uPlot) => {
        const bands = getBands();
        const x = u.scales.x;
        if (!bands.length || x.min == null || x.max == null) return;
        const { ctx, bbox } = u;
        const rects = bandRects(bands, (v) => u.valToPos(v, 'x', true), bbox.left, bbox.left + bbox.width);
        ctx.save();
        for (const r of rects) {
          ctx.fillStyle = CAUSE_STYLE[r.kind].band;
          ctx.fillRect(r.x, bbox.top, r.width, bbox.height);
        }
        ctx.restore();
      },
    },
  };
}

export function UPlotChart({ testid, title, spec, data, bands }: { testid: string; title: string; spec: ChartSpec; data: ChartData; bands: readonly CauseBand[] }) {
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const bandsRef = useRef(bands);
  bandsRef.current = bands;
  const dataRef = useRef(data);
  dataRef.current = data;

  useEffect(() => {
    const root = el.current;
    if (!root) return;
    const opts: uPlot.Options = {
      width: Math.max(320, root.clientWidth),
      height: HEIGHT,
      series: spec.series,
      axes: spec.axes,
      scales: spec.scales,
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
      plugins: [causeBandsPlugin(() => bandsRef.current)],
    };
    const u = new uPlot(opts, dataRef.current as uPlot.AlignedData, root);
    fitX(u, spec);
    plot.current = u;
    const ro = new ResizeObserver(() => {
      const w = root.clientWidth;
      if (w > 0 && Math.abs(w - u.width) > 1) u.setSize({ width: w, height: HEIGHT });
    });
    ro.observe(root);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [spec]);

  // New numbers: the same chart, new data (scales follow unless the user zoomed in; a
  // double click zooms out).
  useEffect(() => {
    const u = plot.current;
    if (!u || u.data === data) return;
    const x = u.scales.x;
    const xs = u.data[0];
    const zoomed = xs.length > 1 && x.min != null && x.max != null && (x.min > xs[0] || x.max < xs[xs.length - 1]);
    u.setData(data as uPlot.AlignedData, !zoomed);
    if (!zoomed) fitX(u, spec);
  }, [data, spec]);

  return (
    <section className="card chart">
      <h3>{title}</h3>
      <div className="chart-box" data-testid={testid} data-points={data[0].length} ref={el} />
    </section>
  );
}
