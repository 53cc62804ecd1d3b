import { useEffect, useMemo, useState } from 'react';
import { useRill } from '../../hooks/context';
import { useStreamAnalytics } from '../../hooks/useStreamAnalytics';
import type { AnalyticsCsvView, Stream } from '../../client/types';
import {
  ANALYTICS_REFRESH_MS, analyticsErrorText, causeBands, csvFilename, formatNumber, ingestData, isFinalError, isLive, labelledMinutes,
  qoeData, rangeFrom, summaryTiles, viewersData,
} from '../analytics';
import { INGEST_CHART, QOE_CHART, UPlotChart, VIEWERS_CHART } from '../charts';
import { Bars, CauseLegend, CauseList, Histogram, RangeSelect, Sessions, Tiles } from '../analyticsViews';
import { StatusBadge } from '../components';
import { Link } from '../router';

/** Range choices: the stream's whole life (the API's default, up to 24 h from the start) or the last N minutes. */
const RANGES: ReadonlyArray<[string, number | null]> = [
  ['Whole stream', null],
  ['Last hour', 60],
  ['Last 6 hours', 360],
  ['Last 24 hours', 1440],
];

/** Saves a Blob as a file through an object URL (the CSV needs the bearer token, a link cannot carry it). */
function saveBlob(blob: Blob, filename: string) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.style.display = 'none';
  document.body.appendChild(a);
  a.click();
  a.remove();
  // The download has started reading the URL by now; give slow disks some time anyway.
  setTimeout(() => URL.revokeObjectURL(url), 30_000);
}

export function AnalyticsPage({ id }: { id: string }) {
  const { api, claims } = useRill();
  const [range, setRange] = useState(0);
  const lastMinutes = RANGES[range][1];
  const { data, error, loading, reload } = useStreamAnalytics(id, { refreshMs: ANALYTICS_REFRESH_MS, enabled: !!claims, lastMinutes });
  const [stream, setStream] = useState<Stream | null>(null);
  const [csvBusy, setCsvBusy] = useState<AnalyticsCsvView | null>(null);
  const [csvError, setCsvError] = useState<unknown>(null);

  useEffect(() => {
    api.getStream(id).then(setStream, () => undefined);
  }, [api, id]);

  const series = data?.series;
  const charts = useMemo(() => {
    const s = series ?? [];
    return { viewers: viewersData(s), qoe: qoeData(s), ingest: ingestData(s), bands: causeBands(s), causes: labelledMinutes(s) };
  }, [series]);

  const download = async (view: AnalyticsCsvView) => {
    setCsvBusy(view);
    setCsvError(null);
    try {
      const blob = await api.analyticsCsv(id, view, { from: rangeFrom(lastMinutes) });
      saveBlob(blob, csvFilename(id, view));
    } catch (e) {
      setCsvError(e);
    } finally {
      setCsvBusy(null);
    }
  };

  const head = (
    <div className="head">
      <h2>Analytics{stream ? `: ${stream.title}` : ''}</h2>
      <StatusBadge status={data?.status ?? stream?.status} />
      <Link to={`/broadcast/${encodeURIComponent(id)}`}>broadcaster</Link> · <Link to={`/settings/${encodeURIComponent(id)}`}>settings</Link> ·{' '}
      <Link to={`/watch/${encodeURIComponent(id)}`}>viewer page</Link>
    </div>
  );

  if (!claims) {
    return (
      <div className="page analytics" data-testid="analytics-page" data-stream-id={id}>
        {head}
        <p className="error" data-testid="analytics-error">Sign in to see analytics.</p>
      </div>
    );
  }
  if (!data) {
    return (
      <div className="page analytics" data-testid="analytics-page" data-stream-id={id}>
        {head}
        {error ? (
          <p className="error" data-testid="analytics-error" data-code={isFinalError(error) ? 'final' : 'retry'}>
            {analyticsErrorText(error)}
          </p>
        ) : (
          <p className="muted">Loading…</p>
        )}
        {error && !isFinalError(error) ? <button onClick={reload}>Try again</button> : null}
      </div>
    );
  }

  const s = data.summary;
  const live = isLive(data.status);
  return (
    <div className="page analytics" data-testid="analytics-page" data-stream-id={id} data-status={data.status}>
      {head}
      <div className="controls">
        <RangeSelect ranges={RANGES} value={range} onChange={setRange} testid="analytics-range" />
        <span className="muted" data-testid="analytics-range-text">
          {new Date(data.from).toLocaleString()} – {new Date(data.to).toLocaleString()} · {data.series.length} min
          {live && ` · refreshed every ${ANALYTICS_REFRESH_MS / 1000} s`}
          {loading && ' · updating…'}
        </span>
        <button data-testid="csv-minutes" disabled={csvBusy !== null} onClick={() => void download('minutes')}>
          {csvBusy === 'minutes' ? 'Preparing…' : '⬇ Minutes CSV'}
        </button>
        <button data-testid="csv-sessions" disabled={csvBusy !== null} onClick={() => void download('sessions')}>
          {csvBusy === 'sessions' ? 'Preparing…' : '⬇ Views CSV'}
        </button>
        {/* PDF through the browser's own print dialog ("Save as PDF"); print styles drop the chrome. */}
        <button data-testid="print-pdf" onClick={() => window.print()}>
          🖨 Print / PDF
        </button>
      </div>
      {csvError ? <p className="error" data-testid="csv-error">{analyticsErrorText(csvError)}</p> : null}
      {error ? <p className="error" data-testid="analytics-error">Refresh failed: {analyticsErrorText(error)}</p> : null}

      <Tiles testid="analytics-summary" tiles={summaryTiles(s)} />
      <p className="muted">
        Peak {formatNumber(s.peakViewers)}
        {s.peakAt && ` at ${new Date(s.peakAt).toLocaleTimeString()}`} · rendition switches per viewer minute: up {formatNumber(s.switchesUpPerViewerMinute, 2)}, down{' '}
        {formatNumber(s.switchesDownPerViewerMinute, 2)}
      </p>

      <CauseLegend />
      <UPlotChart testid="chart-viewers" title="Viewers, chat and reactions" spec={VIEWERS_CHART} data={charts.viewers} bands={charts.bands} />
      <UPlotChart testid="chart-qoe" title="Playback quality: startup, rebuffering, latency" spec={QOE_CHART} data={charts.qoe} bands={charts.bands} />
      <UPlotChart testid="chart-ingest" title="Ingest health: input, fps, encoder speed, governor" spec={INGEST_CHART} data={charts.ingest} bands={charts.bands} />
      <CauseList items={charts.causes} />

      <div className="dist-grid">
        <Bars name="countries" title="Countries" map={s.countries} />
        <Bars name="browsers" title="Browsers" map={s.browsers} />
        <Bars name="oses" title="Operating systems" map={s.oses} />
        <Bars name="devices" title="Devices" map={s.devices} />
        <Bars name="renditions" title="Watch time per rendition" map={s.renditionPercent} percentages />
        <Bars
          name="reactions"
          title="Reactions"
          map={s.reactions}
          extra={(k) => {
            const r = s.reactionsPer100ViewerMinutes?.[k];
            return r != null ? `${formatNumber(r)} / 100 viewer min` : null;
          }}
        />
      </div>
      <div className="dist-grid">
        <Histogram name="startup" title="Startup time" bins={s.startupHistogram} unit="ms" />
        <Histogram name="latency" title="Live latency" bins={s.latencyHistogram} unit="ms" />
        <Histogram name="bandwidth" title="Bandwidth estimate" bins={s.bandwidthHistogram} unit="kbps" />
      </div>
      <Sessions id={id} from={rangeFrom(lastMinutes)} />
    </div>
  );
}
