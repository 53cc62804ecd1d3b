import { useCallback, useEffect, useMemo, useState, type ReactNode } from 'react';
import { useRill } from '../../hooks/context';
import type { ChannelAnalytics, ChannelAnalyticsStream } from '../../client/types';
import { formatMs, formatNumber, formatPercent, isFinalError, type CauseBand } from '../analytics';
import {
  CHANNEL_RANGES, CHANNEL_REFRESH_MS, DEFAULT_CHANNEL_RANGE, DEFAULT_STREAM_SORT, anyLive, channelAnalyticsErrorText, channelChart,
  channelRangeFrom, channelTiles, nextSort, sortStreams, streamLengthMs, type StreamSort, type StreamSortKey,
} from '../channelAnalytics';
import { CHANNEL_CHART, UPlotChart } from '../charts';
import { RangeSelect, Tiles } from '../analyticsViews';
import { StatusBadge } from '../components';
import { Link } from '../router';

/** The channel chart shades nothing. */
const NO_BANDS: readonly CauseBand[] = [];

/**
 * `GET /api/channels/{id}/analytics` over the last `days` days, loaded when signed in and
 * again on a range change, a reload, and every 30 s while one of the streams is live.
 */
function useChannelAnalytics(id: string, days: number) {
  const { api, claims } = useRill();
  const [data, setData] = useState<ChannelAnalytics | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const [tick, setTick] = useState(0);
  const signedIn = claims?.sub ?? null;

  useEffect(() => {
    if (!signedIn) return;
    // Only the newest request's answer is kept (a range change while one is on its way wins).
    let current = true;
    setLoading(true);
    api.channelAnalytics(id, { from: channelRangeFrom(days) }).then(
      (a) => {
        if (!current) return;
        setData(a);
        setError(null);
        setLoading(false);
      },
      (e: unknown) => {
        if (!current) return;
        setError(e);
        if (isFinalError(e)) setData(null);
        setLoading(false);
      },
    );
    return () => {
      current = false;
    };
  }, [api, id, days, signedIn, tick]);

  const reload = useCallback(() => setTick((n) => n + 1), []);
  const poll = !!signedIn && !isFinalError(error) && anyLive(data?.streams);
  useEffect(() => {
    if (!poll) return;
    const t = setInterval(reload, CHANNEL_REFRESH_MS);
    return () => clearInterval(t);
  }, [poll, reload]);

  return { data, error, loading, reload };
}

const SORTABLE: Record<StreamSortKey, string> = {
  startedAt: 'Started',
  views: 'Views',
  peakViewers: 'Peak',
  viewerMinutes: 'Viewer min',
  chatMessages: 'Chat',
  reactions: 'Reactions',
};

function SortHeader({ k, sort, onSort }: { k: StreamSortKey; sort: StreamSort; onSort: (k: StreamSortKey) => void }) {
  const active = sort.key === k;
  return (
    <th aria-sort={active ? (sort.dir === 'asc' ? 'ascending' : 'descending') : 'none'}>
      <button type="button" className="th-sort" data-testid={`sort-${k}`} data-active={active || undefined} onClick={() => onSort(k)}>
        {SORTABLE[k]}
        {active ? (sort.dir === 'asc' ? ' ▲' : ' ▼') : ''}
      </button>
    </th>
  );
}

function StreamRow({ s }: { s: ChannelAnalyticsStream }) {
  return (
    <tr data-testid="channel-stream" data-stream-id={s.streamId} data-status={s.status}>
      <td className="title-cell">
        <Link to={`/analytics/${encodeURIComponent(s.streamId)}`} title="This stream's analytics">
          {s.title || s.streamId}
        </Link>{' '}
        <StatusBadge status={s.status} />
      </td>
      <td>{s.startedAt ? new Date(s.startedAt).toLocaleString() : '–'}</td>
      <td>{formatMs(streamLengthMs(s))}</td>
      <td data-value={s.views}>{formatNumber(s.views)}</td>
      <td>{formatNumber(s.uniqueViewers)}</td>
      <td data-value={s.peakViewers}>{formatNumber(s.peakViewers)}</td>
      <td>{formatNumber(s.viewerMinutes)}</td>
      <td>{formatMs(s.avgWatchMs)}</td>
      <td>{formatNumber(s.chatMessages)}</td>
      <td>{formatNumber(s.reactions)}</td>
      <td>{formatMs(s.startupP50Ms)}</td>
      <td>{formatPercent(s.rebufferPercent)}</td>
    </tr>
  );
}

function StreamTable({ streams }: { streams: readonly ChannelAnalyticsStream[] }) {
  const [sort, setSort] = useState<StreamSort>(DEFAULT_STREAM_SORT);
  const rows = useMemo(() => sortStreams(streams, sort), [streams, sort]);
  const onSort = (k: StreamSortKey) => setSort((cur) => nextSort(cur, k));
  return (
    <section className="card" data-testid="channel-streams" data-sort={`${sort.key}:${sort.dir}`}>
      <h3>Streams ({streams.length})</h3>
      {streams.length === 0 ? (
        <p className="muted">No stream of this channel was live in this range.</p>
      ) : (
        <div className="table-wrap">
          <table className="sessions channel-streams">
            <thead>
              <tr>
                <th>Stream</th>
                <SortHeader k="startedAt" sort={sort} onSort={onSort} />
                <th>Length</th>
                <SortHeader k="views" sort={sort} onSort={onSort} />
                <th>Unique</th>
                <SortHeader k="peakViewers" sort={sort} onSort={onSort} />
                <SortHeader k="viewerMinutes" sort={sort} onSort={onSort} />
                <th>Avg watch</th>
                <SortHeader k="chatMessages" sort={sort} onSort={onSort} />
                <SortHeader k="reactions" sort={sort} onSort={onSort} />
                <th>Startup p50</th>
                <th>Rebuffering</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((s) => (
                <StreamRow key={s.streamId} s={s} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

export function ChannelAnalyticsPage({ id }: { id: string }) {
  const { api, claims } = useRill();
  const [range, setRange] = useState(DEFAULT_CHANNEL_RANGE);
  const days = CHANNEL_RANGES[range][1];
  const { data, error, loading, reload } = useChannelAnalytics(id, days);
  const [name, setName] = useState<string | null>(null);

  useEffect(() => {
    api.getChannel(id).then((c) => setName(c.name), () => undefined);
  }, [api, id]);

  const streams = data?.streams;
  const chart = useMemo(() => channelChart(streams ?? []), [streams]);

  const head = (
    <div className="head">
      <h2>Channel analytics: {name ?? id}</h2>
      <Link to={`/channel/${encodeURIComponent(id)}`} data-testid="channel-page-link">channel page</Link>
    </div>
  );
  const page = (body: ReactNode) => (
    <div className="page analytics" data-testid="channel-analytics-page" data-channel-id={id}>
      {head}
      {body}
    </div>
  );

  if (!claims) return page(<p className="error" data-testid="channel-analytics-error">Sign in to see analytics.</p>);
  if (!data) {
    return page(
      <>
        {error ? (
          <p className="error" data-testid="channel-analytics-error" data-code={isFinalError(error) ? 'final' : 'retry'}>
            {channelAnalyticsErrorText(error)}
          </p>
        ) : (
          <p className="muted">Loading…</p>
        )}
        {error && !isFinalError(error) ? <button onClick={reload}>Try again</button> : null}
      </>,
    );
  }

  const live = anyLive(data.streams);
  return page(
    <>
      <div className="controls">
        <RangeSelect ranges={CHANNEL_RANGES} value={range} onChange={setRange} testid="channel-analytics-range" />
        <span className="muted" data-testid="channel-analytics-range-text">
          {new Date(data.from).toLocaleString()} – {new Date(data.to).toLocaleString()}
          {live && ` · refreshed every ${CHANNEL_REFRESH_MS / 1000} s while live`}
          {loading && ' · updating…'}
        </span>
        <button data-testid="channel-analytics-refresh" disabled={loading} onClick={reload}>↻ Refresh</button>
      </div>
      {error ? <p className="error" data-testid="channel-analytics-error">Refresh failed: {channelAnalyticsErrorText(error)}</p> : null}
      {data.truncated && (
        <p className="warning" data-testid="channel-truncated">
          More streams were live in this range than one answer covers: only the {data.streams.length} most recent are listed and counted in
          the totals. Pick a shorter range to see the rest.
        </p>
      )}

      <Tiles testid="channel-summary" prefix="channel-metric-" tiles={channelTiles(data.totals)} />
      <p className="muted">
        Unique viewers across streams: distinct signed-in users plus anonymous views. Peak viewers: the highest of the streams&apos; peaks.
      </p>

      {chart.data[0].length > 0 ? (
        <UPlotChart testid="chart-channel" title="Views and peak viewers per stream (at its start)" spec={CHANNEL_CHART} data={chart.data} bands={NO_BANDS} />
      ) : (
        <section className="card chart">
          <h3>Views and peak viewers per stream</h3>
          <p className="muted" data-testid="chart-channel-empty">No stream started in this range.</p>
        </section>
      )}

      <StreamTable streams={data.streams} />
    </>,
  );
}
