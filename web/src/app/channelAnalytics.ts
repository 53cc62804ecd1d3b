// Pure logic of the channel analytics page: ranges, totals tiles, sorting the stream rows,
// the chart's arrays (one point per stream at its start) and error texts. No DOM, no uPlot
// at run time (tests/channelAnalytics.test.ts runs it under node).
import { ApiError } from '../client/errors';
import type { ChannelAnalyticsStream, ChannelAnalyticsTotals } from '../client/types';
import { analyticsErrorText, formatTile, isLive, type ChartData, type SummaryTile, type TileFormat } from './analytics';

/** Range choices: the last N days (the API's default is 30). */
export const CHANNEL_RANGES: ReadonlyArray<[string, number]> = [
  ['Last 24 hours', 1],
  ['Last 7 days', 7],
  ['Last 30 days', 30],
  ['Last 90 days', 90],
];
/** The index of "Last 30 days", the API's default range. */
export const DEFAULT_CHANNEL_RANGE = 2;

/** While one of the channel's streams is live, the page refreshes this often. */
export const CHANNEL_REFRESH_MS = 30_000;

/** `from` for "the last `days` days". */
export function channelRangeFrom(days: number, nowMs = Date.now()): string {
  return new Date(nowMs - days * 86_400_000).toISOString();
}

const TOTAL_TILES: ReadonlyArray<[keyof ChannelAnalyticsTotals, string, TileFormat]> = [
  ['streams', 'Streams', 'count'],
  ['views', 'Views', 'count'],
  ['uniqueViewers', 'Unique viewers', 'count'],
  ['viewerMinutes', 'Viewer minutes', 'number'],
  ['peakViewers', 'Peak viewers (one stream)', 'count'],
  ['chatMessages', 'Chat messages', 'count'],
  ['reactions', 'Reactions', 'count'],
  ['avgWatchMs', 'Average watch time', 'ms'],
];

/** The totals as tiles (`data-testid="channel-metric-<name>"`, `data-value` the raw number). */
export function channelTiles(t: ChannelAnalyticsTotals): SummaryTile[] {
  return TOTAL_TILES.map(([name, label, format]) => {
    const raw = t[name];
    const value = typeof raw === 'number' && Number.isFinite(raw) ? raw : null;
    return { name, label, value, text: formatTile(value, format) };
  });
}

/** The columns the stream table sorts by. */
export type StreamSortKey = 'startedAt' | 'views' | 'peakViewers' | 'viewerMinutes' | 'chatMessages' | 'reactions';
export interface StreamSort {
  key: StreamSortKey;
  dir: 'asc' | 'desc';
}
export const DEFAULT_STREAM_SORT: StreamSort = { key: 'startedAt', dir: 'desc' };

/** A click on a column's header: the same column flips its direction, another starts largest first. */
export function nextSort(current: StreamSort, key: StreamSortKey): StreamSort {
  if (current.key === key) return { key, dir: current.dir === 'desc' ? 'asc' : 'desc' };
  return { key, dir: 'desc' };
}

/** Unix seconds of an RFC 3339 instant; null when missing or unreadable. */
export function startSeconds(iso: string | null | undefined): number | null {
  if (!iso) return null;
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : null;
}

function sortValue(s: ChannelAnalyticsStream, key: StreamSortKey): number | null {
  if (key === 'startedAt') return startSeconds(s.startedAt);
  const v = s[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/**
 * A sorted copy. Rows without a value (never started) go last in either direction; ties
 * keep the server's order (live ones first, then the most recent).
 */
export function sortStreams(streams: readonly ChannelAnalyticsStream[], sort: StreamSort): ChannelAnalyticsStream[] {
  const sign = sort.dir === 'asc' ? 1 : -1;
  return streams
    .map((s, i) => ({ s, i, v: sortValue(s, sort.key) }))
    .sort((a, b) => {
      if (a.v === null || b.v === null) return a.v === b.v ? a.i - b.i : a.v === null ? 1 : -1;
      return (a.v - b.v) * sign || a.i - b.i;
    })
    .map((r) => r.s);
}

/** The stream behind each chart point, in the chart's order. */
export interface ChannelChart {
  data: ChartData;
  streams: ChannelAnalyticsStream[];
}

/**
 * One point per started stream, oldest first: x = its start (unix seconds), then views and
 * peak viewers. uPlot wants x ascending: streams that started in the same second are placed
 * a second apart.
 */
export function channelChart(streams: readonly ChannelAnalyticsStream[]): ChannelChart {
  const rows = streams
    .map((s) => ({ s, x: startSeconds(s.startedAt) }))
    .filter((r): r is { s: ChannelAnalyticsStream; x: number } => r.x !== null)
    .sort((a, b) => a.x - b.x || a.s.streamId.localeCompare(b.s.streamId));
  const xs: number[] = [];
  const views: (number | null)[] = [];
  const peaks: (number | null)[] = [];
  let prev = -Infinity;
  for (const r of rows) {
    const x = r.x <= prev ? prev + 1 : r.x;
    prev = x;
    xs.push(x);
    views.push(Number.isFinite(r.s.views) ? r.s.views : null);
    peaks.push(Number.isFinite(r.s.peakViewers) ? r.s.peakViewers : null);
  }
  return { data: [xs, views, peaks], streams: rows.map((r) => r.s) };
}

/**
 * The x range of the per-stream chart: every point with room either side (5 % of the span,
 * at least an hour), so the first and last bars are not cut in half.
 */
export function paddedXRange(xs: ArrayLike<number>): { min: number; max: number } | null {
  if (!xs.length) return null;
  const min = xs[0];
  const max = xs[xs.length - 1];
  const pad = Math.max(3600, (max - min) * 0.05);
  return { min: min - pad, max: max + pad };
}

export const anyLive = (streams: readonly ChannelAnalyticsStream[] | null | undefined): boolean => (streams ?? []).some((s) => isLive(s.status));

/** A stream's length so far in ms (null when it never started). */
export function streamLengthMs(s: ChannelAnalyticsStream, nowMs = Date.now()): number | null {
  const a = s.startedAt ? Date.parse(s.startedAt) : NaN;
  if (!Number.isFinite(a)) return null;
  const b = s.endedAt ? Date.parse(s.endedAt) : nowMs;
  return Number.isFinite(b) ? Math.max(0, b - a) : null;
}

/** What to show for a failed channel analytics request. */
export function channelAnalyticsErrorText(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 403) return "Only the channel's owner and moderators see its analytics.";
    if (e.status === 404) return 'No such channel.';
  }
  return analyticsErrorText(e);
}
