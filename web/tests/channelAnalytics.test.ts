import { describe, expect, it } from 'vitest';
import {
  CHANNEL_RANGES, DEFAULT_CHANNEL_RANGE, DEFAULT_STREAM_SORT, anyLive, channelAnalyticsErrorText, channelChart, channelRangeFrom, channelTiles,
  nextSort, paddedXRange, sortStreams, startSeconds, streamLengthMs,
} from '../src/app/channelAnalytics';
import { ApiError } from '../src/client/errors';
import { RillApi } from '../src/client/rest';
import type { ChannelAnalyticsStream, ChannelAnalyticsTotals } from '../src/client/types';

const T0 = Date.parse('2025-03-01T10:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();

function row(streamId: string, over: Partial<ChannelAnalyticsStream> = {}): ChannelAnalyticsStream {
  return {
    streamId, title: `t ${streamId}`, status: 'ended', startedAt: iso(T0), endedAt: iso(T0 + 3_600_000), views: 1, uniqueViewers: 1, peakViewers: 1,
    viewerMinutes: 10, avgWatchMs: 60_000, chatMessages: 0, reactions: 0, startupP50Ms: 800, rebufferPercent: 0.5,
    ...over,
  };
}

// The server's order: live first, then the most recently started.
const rows = [
  row('live', { status: 'live', startedAt: iso(T0 + 3 * 86_400_000), endedAt: null, views: 5, peakViewers: 4, viewerMinutes: 12.5, chatMessages: 9, reactions: 1 }),
  row('b', { startedAt: iso(T0 + 2 * 86_400_000), views: 20, peakViewers: 7, viewerMinutes: 300, chatMessages: 3, reactions: 8 }),
  row('a', { startedAt: iso(T0), views: 5, peakViewers: 2, viewerMinutes: 40.25, chatMessages: 3, reactions: 2 }),
  row('never', { status: 'cancelled', startedAt: null, endedAt: null, views: 0, peakViewers: 0, viewerMinutes: 0 }),
];
const ids = (list: ChannelAnalyticsStream[]) => list.map((s) => s.streamId);

describe('ranges', () => {
  it('offers 24 h, 7, 30 and 90 days, 30 by default (the API default)', () => {
    expect(CHANNEL_RANGES.map(([, d]) => d)).toEqual([1, 7, 30, 90]);
    expect(CHANNEL_RANGES[DEFAULT_CHANNEL_RANGE][1]).toBe(30);
  });
  it('computes from as N days before now', () => {
    expect(channelRangeFrom(7, T0)).toBe(iso(T0 - 7 * 86_400_000));
    expect(channelRangeFrom(1, T0)).toBe('2025-02-28T10:00:00.000Z');
  });
});

describe('totals tiles', () => {
  const totals: ChannelAnalyticsTotals = { streams: 3, views: 1234, uniqueViewers: 17, viewerMinutes: 352.75, peakViewers: 7, chatMessages: 15, reactions: 11, avgWatchMs: 95_000 };
  it('has every total in order with its raw value and text', () => {
    const tiles = channelTiles(totals);
    expect(tiles.map((t) => t.name)).toEqual(['streams', 'views', 'uniqueViewers', 'viewerMinutes', 'peakViewers', 'chatMessages', 'reactions', 'avgWatchMs']);
    const by = Object.fromEntries(tiles.map((t) => [t.name, t]));
    expect(by.views).toMatchObject({ value: 1234, text: '1,234' });
    expect(by.viewerMinutes).toMatchObject({ value: 352.75, text: '352.8' });
    expect(by.avgWatchMs).toMatchObject({ value: 95_000, text: '1:35' });
  });
  it('shows a dash for an average that was not measured', () => {
    const t = channelTiles({ ...totals, streams: 0, views: 0, avgWatchMs: null }).find((x) => x.name === 'avgWatchMs');
    expect(t).toMatchObject({ value: null, text: '–' });
  });
});

describe('sorting the streams', () => {
  it('starts with the most recently started first', () => {
    expect(DEFAULT_STREAM_SORT).toEqual({ key: 'startedAt', dir: 'desc' });
    expect(ids(sortStreams(rows, DEFAULT_STREAM_SORT))).toEqual(['live', 'b', 'a', 'never']);
    expect(ids(sortStreams(rows, { key: 'startedAt', dir: 'asc' }))).toEqual(['a', 'b', 'live', 'never']);
  });
  it('sorts by each number, ties in the server order, without changing the input', () => {
    const before = ids(rows);
    expect(ids(sortStreams(rows, { key: 'views', dir: 'desc' }))).toEqual(['b', 'live', 'a', 'never']);
    expect(ids(sortStreams(rows, { key: 'views', dir: 'asc' }))).toEqual(['never', 'live', 'a', 'b']);
    expect(ids(sortStreams(rows, { key: 'peakViewers', dir: 'desc' }))).toEqual(['b', 'live', 'a', 'never']);
    expect(ids(sortStreams(rows, { key: 'viewerMinutes', dir: 'desc' }))).toEqual(['b', 'a', 'live', 'never']);
    expect(ids(sortStreams(rows, { key: 'chatMessages', dir: 'desc' }))).toEqual(['live', 'b', 'a', 'never']);
    expect(ids(sortStreams(rows, { key: 'reactions', dir: 'asc' }))).toEqual(['never', 'live', 'a', 'b']);
    expect(ids(rows)).toEqual(before);
  });
  it('puts a stream that never started last in both directions', () => {
    expect(ids(sortStreams(rows, { key: 'startedAt', dir: 'desc' })).at(-1)).toBe('never');
    expect(ids(sortStreams(rows, { key: 'startedAt', dir: 'asc' })).at(-1)).toBe('never');
  });
  it('a header click flips the same column, another column starts largest first', () => {
    const s1 = nextSort(DEFAULT_STREAM_SORT, 'views');
    expect(s1).toEqual({ key: 'views', dir: 'desc' });
    const s2 = nextSort(s1, 'views');
    expect(s2).toEqual({ key: 'views', dir: 'asc' });
    expect(nextSort(s2, 'views')).toEqual({ key: 'views', dir: 'desc' });
    expect(nextSort(s2, 'reactions')).toEqual({ key: 'reactions', dir: 'desc' });
  });
});

describe('chart data', () => {
  it('one point per started stream, oldest first: x = start (unix s), views, peak', () => {
    const c = channelChart(rows);
    expect(c.data).toEqual([
      [T0 / 1000, T0 / 1000 + 2 * 86_400, T0 / 1000 + 3 * 86_400],
      [5, 20, 5],
      [2, 7, 4],
    ]);
    expect(ids(c.streams)).toEqual(['a', 'b', 'live']);
  });
  it('keeps x strictly ascending when two streams started in the same second', () => {
    const c = channelChart([row('y', { startedAt: iso(T0 + 400), views: 2 }), row('x', { startedAt: iso(T0), views: 1 }), row('z', { startedAt: iso(T0 + 999) })]);
    expect(c.data[0]).toEqual([T0 / 1000, T0 / 1000 + 1, T0 / 1000 + 2]);
    expect(ids(c.streams)).toEqual(['x', 'y', 'z']);
  });
  it('is empty without started streams', () => {
    expect(channelChart([]).data).toEqual([[], [], []]);
    expect(channelChart([row('n', { startedAt: null })]).data).toEqual([[], [], []]);
  });
  it('pads the x range: an hour at least, 5 % of a longer span', () => {
    expect(paddedXRange([])).toBeNull();
    expect(paddedXRange([1000])).toEqual({ min: 1000 - 3600, max: 1000 + 3600 });
    expect(paddedXRange([0, 864_000])).toEqual({ min: -43_200, max: 864_000 + 43_200 });
  });
});

describe('helpers', () => {
  it('reads start seconds, lengths and whether a stream is live', () => {
    expect(startSeconds(iso(T0 + 1500))).toBe(T0 / 1000 + 1);
    expect(startSeconds(null)).toBeNull();
    expect(startSeconds('not a date')).toBeNull();
    expect(streamLengthMs(rows[2])).toBe(3_600_000);
    expect(streamLengthMs(rows[0], T0 + 3 * 86_400_000 + 90_000)).toBe(90_000);
    expect(streamLengthMs(rows[3])).toBeNull();
    expect(anyLive(rows)).toBe(true);
    expect(anyLive(rows.slice(1))).toBe(false);
    expect(anyLive(undefined)).toBe(false);
  });
  it('explains refusals and a missing channel', () => {
    expect(channelAnalyticsErrorText(new ApiError(403, 'not_moderator', "only the channel's owner and moderators see its analytics"))).toBe(
      "Only the channel's owner and moderators see its analytics.",
    );
    expect(channelAnalyticsErrorText(new ApiError(404, 'not_found', 'channel not found'))).toBe('No such channel.');
    expect(channelAnalyticsErrorText(new ApiError(401, 'unauthorized', 'x'))).toBe('Sign in to see analytics.');
    expect(channelAnalyticsErrorText(new ApiError(503, 'storage_unavailable', 'try later'))).toBe('try later');
  });
});

describe('RillApi.channelAnalytics', () => {
  type Call = { url: string; init?: RequestInit };
  const api = (status: number, body: string, calls: Call[]) =>
    new RillApi({
      getToken: () => 'jwt',
      fetch: async (url, init) => {
        calls.push({ url, init });
        return new Response(body, { status });
      },
    });

  it('GETs the channel path with the range and the token', async () => {
    const calls: Call[] = [];
    const body = { channelId: 'c 1', from: 'f', to: 't', totals: { streams: 0 }, streams: [], truncated: false };
    const a = await api(200, JSON.stringify(body), calls).channelAnalytics('c 1', { from: '2025-03-01T10:00:00Z' });
    expect(a.channelId).toBe('c 1');
    expect(calls[0].url).toBe('/api/channels/c%201/analytics?from=2025-03-01T10%3A00%3A00Z');
    expect(calls[0].init?.method).toBe('GET');
    expect((calls[0].init?.headers as Record<string, string>).Authorization).toBe('Bearer jwt');
    await api(200, JSON.stringify(body), calls).channelAnalytics('c');
    expect(calls[1].url).toBe('/api/channels/c/analytics');
  });
  it('throws the refusal as an ApiError', async () => {
    const refusal = JSON.stringify({ error: { code: 'not_moderator', message: "only the channel's owner and moderators see its analytics" } });
    await expect(api(403, refusal, []).channelAnalytics('c')).rejects.toMatchObject({ status: 403, code: 'not_moderator' });
    await expect(api(404, 'no', []).channelAnalytics('c')).rejects.toMatchObject({ status: 404 });
  });
});
