// Pure logic of the analytics views: uPlot data arrays from the per-minute series, cause
// bands, bar rows and histogram labels, number formatting. No DOM, no uPlot at run time
// (tests/analytics.test.ts runs it under node).
import { ApiError } from '../client/errors';
import { formatDuration } from '../client/format';
import type { AnalyticsMinute, AnalyticsSummary, CauseKind, HistogramBin, StreamStatus } from '../client/types';

/** The analytics page refreshes this often while the stream is live. */
export const ANALYTICS_REFRESH_MS = 5_000;
/** The broadcaster page's live panel refreshes this often. */
export const LIVE_PANEL_REFRESH_MS = 10_000;

/** uPlot's aligned data: x (unix seconds), then one array per series; null is a gap. */
export type ChartData = [number[], ...(number | null)[][]];

export const minuteSeconds = (iso: string): number => Math.floor(Date.parse(iso) / 1000);

function columns(series: readonly AnalyticsMinute[], picks: ReadonlyArray<(m: AnalyticsMinute) => number | null | undefined>): ChartData {
  const n = series.length;
  const xs = new Array<number>(n);
  const ys = picks.map(() => new Array<number | null>(n));
  for (let i = 0; i < n; i++) {
    const m = series[i];
    xs[i] = minuteSeconds(m.minute);
    for (let j = 0; j < picks.length; j++) {
      const v = picks[j](m);
      ys[j][i] = v === undefined || v === null || !Number.isFinite(v) ? null : v;
    }
  }
  return [xs, ...ys];
}

/** Concurrent viewers (max, avg), then chat messages and reactions per minute (second axis). */
export const viewersData = (series: readonly AnalyticsMinute[]): ChartData =>
  columns(series, [(m) => m.viewersMax, (m) => m.viewersAvg, (m) => m.chatMessages, (m) => m.reactions]);

/** Startup p50 (ms), rebuffer %, latency p50 and p95 (ms). */
export const qoeData = (series: readonly AnalyticsMinute[]): ChartData =>
  columns(series, [(m) => m.startupP50Ms, (m) => m.rebufferPercent, (m) => m.latencyP50Ms, (m) => m.latencyP95Ms]);

/** Input kbps, fps, encoder speed (min), governor level (max); gaps where the node sent no samples. */
export const ingestData = (series: readonly AnalyticsMinute[]): ChartData =>
  columns(series, [(m) => m.ingest?.inputKbps, (m) => m.ingest?.fps, (m) => m.ingest?.encoderSpeedMin, (m) => m.ingest?.governorLevelMax]);

export const CAUSE_KINDS: readonly CauseKind[] = ['ingest', 'delivery', 'viewerNetwork'];

export const CAUSE_STYLE: Record<CauseKind, { label: string; color: string; band: string }> = {
  ingest: { label: 'Ingest (encoder, upload)', color: '#e5484d', band: 'rgba(229, 72, 77, 0.22)' },
  delivery: { label: 'Delivery (origin, CDN)', color: '#f5a524', band: 'rgba(245, 165, 36, 0.22)' },
  viewerNetwork: { label: "Viewers' networks", color: '#a78bfa', band: 'rgba(167, 139, 250, 0.22)' },
};

export const isCauseKind = (k: unknown): k is CauseKind => k === 'ingest' || k === 'delivery' || k === 'viewerNetwork';

/** A minute whose QoE dropped, with why. */
export interface LabelledMinute {
  at: number;
  minute: string;
  kind: CauseKind;
  detail: string;
}

export function labelledMinutes(series: readonly AnalyticsMinute[]): LabelledMinute[] {
  const out: LabelledMinute[] = [];
  for (const m of series) {
    if (m.cause && isCauseKind(m.cause.kind)) out.push({ at: minuteSeconds(m.minute), minute: m.minute, kind: m.cause.kind, detail: m.cause.detail });
  }
  return out;
}

/** A shaded range of the timeline, [from, to) in unix seconds. */
export interface CauseBand {
  kind: CauseKind;
  from: number;
  to: number;
  minutes: number;
}

/** Consecutive labelled minutes of the same kind merge into one band (each minute spans 60 s). */
export function causeBands(series: readonly AnalyticsMinute[]): CauseBand[] {
  const bands: CauseBand[] = [];
  for (const l of labelledMinutes(series)) {
    const last = bands[bands.length - 1];
    if (last && last.kind === l.kind && last.to === l.at) {
      last.to = l.at + 60;
      last.minutes++;
    } else {
      bands.push({ kind: l.kind, from: l.at, to: l.at + 60, minutes: 1 });
    }
  }
  return bands;
}

/**
 * Pixel rectangles of the bands inside the plot area [left, right]: `toPx` maps seconds to
 * pixels (uPlot's `valToPos(v, 'x', true)`); bands outside the area are dropped, the rest cut.
 */
export function bandRects(bands: readonly CauseBand[], toPx: (v: number) => number, left: number, right: number): Array<{ kind: CauseKind; x: number; width: number }> {
  const out: Array<{ kind: CauseKind; x: number; width: number }> = [];
  for (const b of bands) {
    const a = toPx(b.from);
    const z = toPx(b.to);
    if (!Number.isFinite(a) || !Number.isFinite(z)) continue;
    const x0 = Math.max(left, Math.min(a, z));
    const x1 = Math.min(right, Math.max(a, z));
    if (x1 - x0 <= 0) continue;
    out.push({ kind: b.kind, x: x0, width: Math.max(1, x1 - x0) });
  }
  return out;
}

/** One row of a distribution: its share of the total and its width next to the largest. */
export interface BarRow {
  key: string;
  value: number;
  percent: number;
  width: number;
}

/**
 * Rows of a `{key: count}` map, largest first (ties by key). `percentages`: the values are
 * already percentages (renditions). More than `limit` rows fold into "other".
 */
export function barRows(map: Record<string, number> | null | undefined, opts: { percentages?: boolean; limit?: number } = {}): BarRow[] {
  const entries = Object.entries(map ?? {}).filter(([, v]) => Number.isFinite(v) && v > 0);
  entries.sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const limit = opts.limit ?? 12;
  if (entries.length > limit) {
    const rest = entries.splice(limit - 1);
    entries.push(['other', rest.reduce((s, [, v]) => s + v, 0)]);
  }
  const total = entries.reduce((s, [, v]) => s + v, 0);
  const max = entries.reduce((m, [, v]) => Math.max(m, v), 0);
  return entries.map(([key, value]) => ({
    key,
    value,
    percent: opts.percentages ? value : total > 0 ? (value / total) * 100 : 0,
    width: max > 0 ? (value / max) * 100 : 0,
  }));
}

export const totalOf = (map: Record<string, number> | null | undefined): number =>
  Object.values(map ?? {}).reduce((s, v) => s + (Number.isFinite(v) ? v : 0), 0);

export interface HistogramRow {
  label: string;
  count: number;
  percent: number;
  width: number;
}

/** Bins labelled by their range ("≤ 250 ms", "250–500 ms", "> 4000 ms"). */
export function histogramRows(bins: readonly HistogramBin[] | null | undefined, unit: string): HistogramRow[] {
  const list = bins ?? [];
  const total = list.reduce((s, b) => s + b.count, 0);
  const max = list.reduce((m, b) => Math.max(m, b.count), 0);
  let lower: number | null = null;
  return list.map((b) => {
    const label =
      b.upTo === null
        ? lower === null ? 'all' : `> ${lower} ${unit}`
        : lower === null ? `≤ ${b.upTo} ${unit}` : `${lower}–${b.upTo} ${unit}`;
    if (b.upTo !== null) lower = b.upTo;
    return { label, count: b.count, percent: total > 0 ? (b.count / total) * 100 : 0, width: max > 0 ? (b.count / max) * 100 : 0 };
  });
}

const DASH = '–';

/** 850 -> "850 ms", 12_340 -> "12.3 s", 754_000 -> "12:34"; null -> "–". */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return DASH;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return formatDuration(ms / 1000);
}

/** 12.345 -> "12.3%", 0 -> "0%"; null -> "–". */
export function formatPercent(p: number | null | undefined, digits = 1): string {
  if (p === null || p === undefined || !Number.isFinite(p)) return DASH;
  if (p === 0) return '0%';
  return `${p.toFixed(digits)}%`;
}

/** Integers as they are (with separators), fractions to `digits` places; null -> "–". */
export function formatNumber(n: number | null | undefined, digits = 1): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return DASH;
  return Number.isInteger(n) ? n.toLocaleString('en-US') : n.toFixed(digits);
}

export type TileFormat = 'count' | 'number' | 'ms' | 'percent';

export interface SummaryTile {
  /** `data-testid="metric-<name>"`. */
  name: string;
  label: string;
  /** The raw number (`data-value`); null when not measured. */
  value: number | null;
  text: string;
}

const TILES: ReadonlyArray<[keyof AnalyticsSummary | 'reactions', string, TileFormat]> = [
  ['concurrentNow', 'Watching now', 'count'],
  ['peakViewers', 'Peak viewers', 'count'],
  ['views', 'Views', 'count'],
  ['uniqueViewers', 'Unique viewers', 'count'],
  ['viewerMinutes', 'Viewer minutes', 'number'],
  ['avgWatchMs', 'Average watch time', 'ms'],
  ['medianWatchMs', 'Median watch time', 'ms'],
  ['startupP50Ms', 'Startup p50', 'ms'],
  ['startupP95Ms', 'Startup p95', 'ms'],
  ['exitsBeforeStartPercent', 'Exits before start', 'percent'],
  ['playbackFailurePercent', 'Playback failures', 'percent'],
  ['rebufferPercent', 'Rebuffering', 'percent'],
  ['rebuffersPerMinute', 'Rebuffers / min', 'number'],
  ['latencyP50Ms', 'Latency p50', 'ms'],
  ['latencyP95Ms', 'Latency p95', 'ms'],
  ['chatMessages', 'Chat messages', 'count'],
  ['chatMessagesPerMinute', 'Chat / min', 'number'],
  ['chatters', 'Chatters', 'count'],
  ['chattedPercent', 'Viewers who chatted', 'percent'],
  ['reactions', 'Reactions', 'count'],
];

export function formatTile(value: number | null, format: TileFormat): string {
  switch (format) {
    case 'ms':
      return formatMs(value);
    case 'percent':
      return formatPercent(value);
    case 'count':
    case 'number':
      return formatNumber(value);
  }
}

/** The summary's tiles; `reactions` is the total over every emoji. */
export function summaryTiles(s: AnalyticsSummary, names?: readonly string[]): SummaryTile[] {
  const tiles = TILES.filter(([name]) => !names || names.includes(name)).map(([name, label, format]): SummaryTile => {
    const raw = name === 'reactions' ? totalOf(s.reactions) : s[name];
    const value = typeof raw === 'number' && Number.isFinite(raw) ? raw : null;
    return { name, label, value, text: formatTile(value, format) };
  });
  return names ? names.map((n) => tiles.find((t) => t.name === n)).filter((t): t is SummaryTile => !!t) : tiles;
}

export const isLive = (status: StreamStatus | undefined | null): boolean => status === 'live' || status === 'preparing';

/** `from` for "the last `minutes` minutes" (null: the API's default, the stream's life). */
export function rangeFrom(minutes: number | null, nowMs = Date.now()): string | undefined {
  return minutes === null ? undefined : new Date(nowMs - minutes * 60_000).toISOString();
}

export const csvFilename = (id: string, view: 'minutes' | 'sessions'): string => `stream-${id.replace(/[^A-Za-z0-9_-]/g, '_')}-${view}.csv`;

/** What to show for a failed analytics request. */
export function analyticsErrorText(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 403) return 'Only the owner and moderators see analytics for this stream.';
    if (e.status === 404) return 'Stream not found.';
    if (e.status === 401) return 'Sign in to see analytics.';
    return e.message;
  }
  return e instanceof Error ? e.message : String(e);
}

/** A refusal or a missing stream: refreshing again will not help. */
export const isFinalError = (e: unknown): boolean => e instanceof ApiError && (e.status === 401 || e.status === 403 || e.status === 404);
