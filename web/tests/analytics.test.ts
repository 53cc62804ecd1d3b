import { describe, expect, it } from 'vitest';
import {
  analyticsErrorText, bandRects, barRows, causeBands, csvFilename, formatMs, formatNumber, formatPercent, histogramRows, ingestData,
  isFinalError, labelledMinutes, minuteSeconds, qoeData, rangeFrom, summaryTiles, totalOf, viewersData,
} from '../src/app/analytics';
import { ApiError } from '../src/client/errors';
import { RillApi } from '../src/client/rest';
import type { AnalyticsMinute, AnalyticsSummary, CauseKind } from '../src/client/types';

const T0 = Date.parse('2025-03-01T10:00:00.000Z');

function minute(i: number, over: Partial<AnalyticsMinute> = {}): AnalyticsMinute {
  return {
    minute: new Date(T0 + i * 60_000).toISOString(),
    viewersMax: i % 7,
    viewersAvg: (i % 7) / 2,
    viewerSeconds: (i % 7) * 30,
    viewsStarted: 0,
    viewsEnded: 0,
    playbackStarts: 0,
    failures: 0,
    startupP50Ms: i % 5 === 0 ? null : 400 + i,
    rebufferPercent: i % 3 === 0 ? null : 0.5,
    rebuffers: 0,
    switchesUp: 0,
    switchesDown: 0,
    latencyP50Ms: 1800,
    latencyP95Ms: i % 11 === 0 ? null : 3200,
    chatMessages: i % 4,
    chatters: 1,
    reactions: i % 2,
    ingest: i % 10 === 9 ? null : { samples: 12, inputKbps: 2400, fps: 30, droppedFrames: 0, lateFrames: 0, encoderSpeedMin: 1.02, governorLevelMax: 0, healthMin: 98 },
    cause: null,
    ...over,
  };
}

const series = (n: number, f?: (i: number) => Partial<AnalyticsMinute>) => Array.from({ length: n }, (_, i) => minute(i, f?.(i)));

function summary(over: Partial<AnalyticsSummary> = {}): AnalyticsSummary {
  return {
    concurrentNow: 1, peakViewers: 3, peakAt: null, views: 4, uniqueViewers: 3, viewerMinutes: 12.5, avgWatchMs: 95_000, medianWatchMs: 60_000,
    startupP50Ms: 850, startupP95Ms: 2100, exitsBeforeStartPercent: 0, playbackFailurePercent: null, rebufferPercent: 1.25, rebuffersPerMinute: 0.1,
    switchesUpPerViewerMinute: 0.2, switchesDownPerViewerMinute: 0.1, renditionPercent: { '720p': 80.5, '480p': 19.5 }, latencyP50Ms: 1900,
    latencyP95Ms: 3100, chatMessages: 2, chatMessagesPerMinute: 0.4, chatters: 2, chattedPercent: 66.7, reactions: { '🔥': 3, '❤️': 1 },
    reactionsPer100ViewerMinutes: { '🔥': 24 }, countries: { DE: 1, unknown: 2 }, browsers: {}, oses: {}, devices: { desktop: 1, mobile: 1, bot: 1 },
    startupHistogram: [], latencyHistogram: [], bandwidthHistogram: [],
    ...over,
  };
}

describe('chart data', () => {
  it('builds aligned arrays: x in unix seconds, one array per series', () => {
    const d = viewersData(series(3));
    expect(d).toHaveLength(5);
    expect(d[0]).toEqual([T0 / 1000, T0 / 1000 + 60, T0 / 1000 + 120]);
    expect(d[1]).toEqual([0, 1, 2]);
    expect(d[2]).toEqual([0, 0.5, 1]);
    expect(d[3]).toEqual([0, 1, 2]);
    expect(d[4]).toEqual([0, 1, 0]);
    expect(minuteSeconds('2025-03-01T10:00:00.000Z')).toBe(T0 / 1000);
  });

  it('keeps nulls as gaps (QoE, and ingest minutes without samples)', () => {
    const s = series(12);
    const q = qoeData(s);
    expect(q[1][0]).toBeNull(); // startup p50 null at i % 5 == 0
    expect(q[1][1]).toBe(401);
    expect(q[2][0]).toBeNull(); // rebuffer % null at i % 3 == 0
    expect(q[2][1]).toBe(0.5);
    expect(q[4][0]).toBeNull();
    expect(q[4][11]).toBeNull();
    const g = ingestData(s);
    expect(g).toHaveLength(5);
    expect(g.slice(1).map((col) => col[9])).toEqual([null, null, null, null]);
    expect(g.slice(1).map((col) => col[0])).toEqual([2400, 30, 1.02, 0]);
    // A NaN or infinite number is a gap too, never a point.
    expect(qoeData([minute(1, { rebufferPercent: Number.NaN })])[2][0]).toBeNull();
  });

  it.each([360, 1440])('handles a %i-point series: equal lengths, ascending x, the gaps where the data has them', (n) => {
    const s = series(n);
    for (const d of [viewersData(s), qoeData(s), ingestData(s)]) {
      for (const col of d) expect(col).toHaveLength(n);
      const xs = d[0];
      for (let i = 1; i < n; i++) expect(xs[i] - xs[i - 1]).toBe(60);
    }
    const gaps = ingestData(s)[1].filter((v) => v === null).length;
    expect(gaps).toBe(Math.floor(n / 10));
    const startupGaps = qoeData(s)[1].filter((v) => v === null).length;
    expect(startupGaps).toBe(Math.ceil(n / 5));
  });

  it('builds a day of data quickly (refreshes run every 5 s)', () => {
    const s = series(1440);
    const t = performance.now();
    for (let k = 0; k < 20; k++) {
      viewersData(s);
      qoeData(s);
      ingestData(s);
      causeBands(s);
    }
    expect((performance.now() - t) / 20).toBeLessThan(100);
  });

  it('answers empty arrays for an empty series', () => {
    expect(viewersData([])).toEqual([[], [], [], [], []]);
    expect(causeBands([])).toEqual([]);
  });
});

describe('cause bands', () => {
  const kinds: Array<CauseKind | null> = [null, 'ingest', 'ingest', 'delivery', null, 'delivery', 'viewerNetwork', 'viewerNetwork', 'viewerNetwork', null];
  const s = series(kinds.length, (i) => ({ cause: kinds[i] ? { kind: kinds[i]!, detail: `why ${i}` } : null }));
  const x = (i: number) => T0 / 1000 + i * 60;

  it('merges consecutive minutes of one kind into a band', () => {
    expect(causeBands(s)).toEqual([
      { kind: 'ingest', from: x(1), to: x(3), minutes: 2 },
      { kind: 'delivery', from: x(3), to: x(4), minutes: 1 },
      { kind: 'delivery', from: x(5), to: x(6), minutes: 1 },
      { kind: 'viewerNetwork', from: x(6), to: x(9), minutes: 3 },
    ]);
  });

  it('lists every labelled minute, and ignores an absent cause (older servers) or an unknown kind', () => {
    expect(labelledMinutes(s).map((l) => [l.kind, l.detail])).toEqual([
      ['ingest', 'why 1'], ['ingest', 'why 2'], ['delivery', 'why 3'], ['delivery', 'why 5'],
      ['viewerNetwork', 'why 6'], ['viewerNetwork', 'why 7'], ['viewerNetwork', 'why 8'],
    ]);
    const old = series(2).map(({ cause: _c, ...rest }) => rest as AnalyticsMinute);
    expect(causeBands(old)).toEqual([]);
    expect(labelledMinutes([minute(0, { cause: { kind: 'weather' as CauseKind, detail: '' } })])).toEqual([]);
  });

  it('maps bands to pixel rectangles cut to the plot area', () => {
    const toPx = (v: number) => (v - x(0)) / 6; // 10 px a minute
    const rects = bandRects(causeBands(s), toPx, 15, 80);
    expect(rects).toEqual([
      { kind: 'ingest', x: 15, width: 15 },
      { kind: 'delivery', x: 30, width: 10 },
      { kind: 'delivery', x: 50, width: 10 },
      { kind: 'viewerNetwork', x: 60, width: 20 },
    ]);
    expect(bandRects(causeBands(s), toPx, 200, 300)).toEqual([]);
    expect(bandRects(causeBands(s), () => Number.NaN, 0, 100)).toEqual([]);
  });
});

describe('bars and histograms', () => {
  it('sorts rows largest first with their share and their width next to the largest', () => {
    expect(barRows({ DE: 1, unknown: 2, FR: 1 })).toEqual([
      { key: 'unknown', value: 2, percent: 50, width: 100 },
      { key: 'DE', value: 1, percent: 25, width: 50 },
      { key: 'FR', value: 1, percent: 25, width: 50 },
    ]);
    expect(barRows({})).toEqual([]);
    expect(barRows(undefined)).toEqual([]);
    expect(barRows({ a: 0 })).toEqual([]);
  });

  it('keeps percentages as they are (renditions) and folds the tail into "other"', () => {
    const r = barRows({ '720p': 80.5, '480p': 19.5 }, { percentages: true });
    expect(r.map((x) => [x.key, x.percent, x.width])).toEqual([['720p', 80.5, 100], ['480p', 19.5, (19.5 / 80.5) * 100]]);
    const many = Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`c${String(i).padStart(2, '0')}`, 15 - i]));
    const folded = barRows(many, { limit: 5 });
    expect(folded).toHaveLength(5);
    expect(folded[4]).toMatchObject({ key: 'other', value: 11 + 10 + 9 + 8 + 7 + 6 + 5 + 4 + 3 + 2 + 1 });
  });

  it('labels histogram bins by their range', () => {
    const rows = histogramRows([{ upTo: 250, count: 1 }, { upTo: 500, count: 3 }, { upTo: null, count: 0 }], 'ms');
    expect(rows).toEqual([
      { label: '≤ 250 ms', count: 1, percent: 25, width: (1 / 3) * 100 },
      { label: '250–500 ms', count: 3, percent: 75, width: 100 },
      { label: '> 500 ms', count: 0, percent: 0, width: 0 },
    ]);
    expect(histogramRows([], 'kbps')).toEqual([]);
    expect(histogramRows([{ upTo: null, count: 0 }], 'ms')[0]).toMatchObject({ label: 'all', percent: 0, width: 0 });
  });

  it('totals a map', () => {
    expect(totalOf({ '🔥': 3, '❤️': 1 })).toBe(4);
    expect(totalOf({})).toBe(0);
  });
});

describe('formatting', () => {
  it('formats milliseconds', () => {
    expect(formatMs(null)).toBe('–');
    expect(formatMs(850)).toBe('850 ms');
    expect(formatMs(12_340)).toBe('12.3 s');
    expect(formatMs(754_000)).toBe('12:34');
    expect(formatMs(3_725_000)).toBe('1:02:05');
  });
  it('formats percentages and numbers', () => {
    expect(formatPercent(null)).toBe('–');
    expect(formatPercent(0)).toBe('0%');
    expect(formatPercent(12.345)).toBe('12.3%');
    expect(formatPercent(80.5, 0)).toBe('81%');
    expect(formatNumber(1234)).toBe('1,234');
    expect(formatNumber(0.333, 2)).toBe('0.33');
    expect(formatNumber(undefined)).toBe('–');
  });
});

describe('summary tiles', () => {
  it('carries the raw numbers, the reaction total and dashes for what was not measured', () => {
    const tiles = summaryTiles(summary());
    const by = Object.fromEntries(tiles.map((t) => [t.name, t]));
    expect(by.views).toMatchObject({ value: 4, text: '4' });
    expect(by.reactions).toMatchObject({ value: 4, text: '4' });
    expect(by.avgWatchMs).toMatchObject({ value: 95_000, text: '1:35' });
    expect(by.rebufferPercent).toMatchObject({ value: 1.25, text: '1.3%' });
    expect(by.playbackFailurePercent).toMatchObject({ value: null, text: '–' });
    for (const name of ['views', 'chatMessages', 'peakViewers', 'uniqueViewers', 'avgWatchMs', 'startupP50Ms', 'rebufferPercent', 'latencyP50Ms', 'reactions']) {
      expect(by[name], name).toBeDefined();
    }
  });
  it('picks and orders a subset', () => {
    expect(summaryTiles(summary(), ['reactions', 'views', 'nope']).map((t) => t.name)).toEqual(['reactions', 'views']);
  });
});

describe('errors and ranges', () => {
  it('explains refusals', () => {
    expect(analyticsErrorText(new ApiError(403, 'not_moderator', 'x'))).toMatch(/only the owner and moderators/i);
    expect(analyticsErrorText(new ApiError(404, 'not_found', 'x'))).toMatch(/stream not found/i);
    expect(analyticsErrorText(new ApiError(500, 'internal', 'boom'))).toBe('boom');
    expect(isFinalError(new ApiError(403, 'forbidden', ''))).toBe(true);
    expect(isFinalError(new ApiError(503, 'storage_unavailable', ''))).toBe(false);
  });
  it('computes the range start and the file name', () => {
    expect(rangeFrom(null)).toBeUndefined();
    expect(rangeFrom(60, T0)).toBe(new Date(T0 - 3_600_000).toISOString());
    expect(csvFilename('01JD8', 'minutes')).toBe('stream-01JD8-minutes.csv');
    expect(csvFilename('a/b', 'sessions')).toBe('stream-a_b-sessions.csv');
  });
});

describe('RillApi analytics', () => {
  type Call = { url: string; init?: RequestInit };
  const api = (status: number, body: string, calls: Call[], type = 'application/json') =>
    new RillApi({
      getToken: () => 'jwt',
      fetch: async (url, init) => {
        calls.push({ url, init });
        return new Response(body, { status, headers: { 'content-type': type } });
      },
    });

  it('asks for the summary with the range and the token', async () => {
    const calls: Call[] = [];
    const a = await api(200, JSON.stringify({ streamId: 's1', series: [] }), calls).streamAnalytics('s 1', { from: '2025-03-01T10:00:00Z' });
    expect(a.streamId).toBe('s1');
    expect(calls[0].url).toBe('/api/streams/s%201/analytics?from=2025-03-01T10%3A00%3A00Z');
    expect((calls[0].init?.headers as Record<string, string>).Authorization).toBe('Bearer jwt');
    await api(200, '{"items":[]}', calls).streamViews('s1');
    expect(calls[1].url).toBe('/api/streams/s1/analytics?view=sessions');
  });

  it('downloads the CSV as a Blob with the token', async () => {
    const calls: Call[] = [];
    const csv = 'minute,viewers_max,viewers_avg\r\n2025-03-01T10:00:00.000Z,1,0.5\r\n';
    const blob = await api(200, csv, calls, 'text/csv').analyticsCsv('s1', 'minutes');
    expect(await blob.text()).toBe(csv);
    expect(calls[0].url).toBe('/api/streams/s1/analytics?format=csv');
    const h = calls[0].init?.headers as Record<string, string>;
    expect(h.Authorization).toBe('Bearer jwt');
    expect(h.Accept).toBe('text/csv');
    await api(200, '', calls, 'text/csv').analyticsCsv('s1', 'sessions');
    expect(calls[1].url).toBe('/api/streams/s1/analytics?format=csv&view=sessions');
  });

  it('maps refusals to ApiError', async () => {
    const body = JSON.stringify({ error: { code: 'not_moderator', message: 'only the owner and moderators' } });
    await expect(api(403, body, []).analyticsCsv('s1', 'minutes')).rejects.toMatchObject({ name: 'ApiError', status: 403, code: 'not_moderator' });
    await expect(api(404, 'no', []).streamAnalytics('s1')).rejects.toMatchObject({ status: 404, code: 'not_found' });
  });
});
