// The analytics page's plain parts (no chart library): summary tiles, CSS bar distributions,
// histograms, the cause legend and list, the per-view table, and the broadcaster's live panel.
import { useState, type ReactNode } from 'react';
import { useRill } from '../hooks/context';
import { useStreamAnalytics } from '../hooks/useStreamAnalytics';
import type { AnalyticsSummary, AnalyticsView, HistogramBin } from '../client/types';
import {
  CAUSE_KINDS, CAUSE_STYLE, LIVE_PANEL_REFRESH_MS, analyticsErrorText, barRows, formatMs, formatNumber, formatPercent, histogramRows,
  summaryTiles, type LabelledMinute, type SummaryTile,
} from './analytics';

/** The range picker of both analytics pages: one option per `[label, value]`, chosen by index. */
export function RangeSelect({ ranges, value, onChange, testid }: {
  ranges: ReadonlyArray<readonly [string, unknown]>;
  value: number;
  onChange: (index: number) => void;
  testid: string;
}) {
  return (
    <label className="inline">
      Range
      <select data-testid={testid} value={value} onChange={(e) => onChange(Number(e.target.value))}>
        {ranges.map(([label], i) => (
          <option key={label} value={i}>{label}</option>
        ))}
      </select>
    </label>
  );
}

/** Number tiles; each is `data-testid="<prefix><name>"` with the raw number in `data-value`. */
export function Tiles({ tiles, testid, prefix = 'metric-' }: { tiles: SummaryTile[]; testid: string; prefix?: string }) {
  return (
    <div className="tiles" data-testid={testid}>
      {tiles.map((t) => (
        <div key={t.name} className="tile" data-testid={`${prefix}${t.name}`} data-value={t.value ?? ''}>
          <span className="tile-value">{t.text}</span>
          <span className="tile-label">{t.label}</span>
        </div>
      ))}
    </div>
  );
}

/** A distribution as horizontal bars; `percentages`: the values are percentages already. */
export function Bars(props: { name: string; title: string; map: Record<string, number>; percentages?: boolean; extra?: (key: string) => string | null }) {
  const rows = barRows(props.map, { percentages: props.percentages });
  return (
    <section className="card dist" data-testid={`dist-${props.name}`}>
      <h3>{props.title}</h3>
      {rows.length === 0 ? (
        <p className="muted">No data yet.</p>
      ) : (
        <ul className="bars">
          {rows.map((r) => (
            <li key={r.key} data-key={r.key} data-value={r.value}>
              <span className="bar-key">{r.key}</span>
              <span className="bar-track">
                <span className="bar-fill" style={{ width: `${r.width}%` }} />
              </span>
              <span className="bar-num">
                {props.percentages ? formatPercent(r.value) : `${formatNumber(r.value)} · ${formatPercent(r.percent, 0)}`}
              </span>
              {props.extra?.(r.key) && <small className="muted bar-extra">{props.extra(r.key)}</small>}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function Histogram({ name, title, bins, unit }: { name: string; title: string; bins: HistogramBin[]; unit: string }) {
  const rows = histogramRows(bins, unit);
  const empty = rows.every((r) => r.count === 0);
  return (
    <section className="card dist" data-testid={`hist-${name}`}>
      <h3>{title}</h3>
      {empty ? (
        <p className="muted">No reports yet.</p>
      ) : (
        <ul className="bars">
          {rows.map((r) => (
            <li key={r.label} data-value={r.count}>
              <span className="bar-key">{r.label}</span>
              <span className="bar-track">
                <span className="bar-fill hist" style={{ width: `${r.width}%` }} />
              </span>
              <span className="bar-num">
                {r.count} · {formatPercent(r.percent, 0)}
              </span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function CauseLegend() {
  return (
    <div className="cause-legend" data-testid="cause-legend">
      <span className="muted">Shaded minutes, why viewers&apos; playback got worse:</span>
      {CAUSE_KINDS.map((k) => (
        <span key={k} className="cause-key" data-kind={k}>
          <i style={{ background: CAUSE_STYLE[k].color }} /> {CAUSE_STYLE[k].label}
        </span>
      ))}
    </div>
  );
}

const hhmm = (iso: string) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

export function CauseList({ items }: { items: LabelledMinute[] }) {
  return (
    <section className="card" data-testid="cause-section">
      <h3>Minutes with worse playback ({items.length})</h3>
      {items.length === 0 && <p className="muted">None: no minute crossed the thresholds (rebuffering ≥ 2 %, a failure, startup p50 &gt; 5 s).</p>}
      <ul className="cause-list" data-testid="cause-list">
        {items.map((c) => (
          <li key={c.at} data-kind={c.kind} data-minute={c.minute}>
            <i style={{ background: CAUSE_STYLE[c.kind].color }} /> <b>{hhmm(c.minute)}</b> {CAUSE_STYLE[c.kind].label}: {c.detail}
          </li>
        ))}
      </ul>
    </section>
  );
}

const SESSIONS_SHOWN = 200;

/** The per-view rows, loaded when opened. */
export function Sessions({ id, from }: { id: string; from: string | undefined }) {
  const { api } = useRill();
  const [items, setItems] = useState<AnalyticsView[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const load = () => {
    setError(null);
    api.streamViews(id, { from }).then(
      (v) => setItems([...v.items].sort((a, b) => b.startedAt.localeCompare(a.startedAt))),
      setError,
    );
  };
  return (
    <details className="card" data-testid="sessions" onToggle={(e) => (e.currentTarget.open && items === null ? load() : undefined)}>
      <summary>Views, one row each {items && `(${items.length})`}</summary>
      {error ? <p className="error">{analyticsErrorText(error)}</p> : null}
      {items && (
        <div className="table-wrap">
          <table className="sessions">
            <thead>
              <tr>
                <th>Started</th><th>Watched</th><th>User</th><th>Startup</th><th>Rebuffering</th><th>Rendition</th><th>Latency</th><th>Bandwidth</th><th>Error</th>
              </tr>
            </thead>
            <tbody>
              {items.slice(0, SESSIONS_SHOWN).map((v) => (
                <tr key={v.viewId}>
                  <td>{new Date(v.startedAt).toLocaleString()}{v.endedAt === null && <span className="badge badge-live">open</span>}</td>
                  <td>{formatMs(v.watchMs)}</td>
                  <td>{v.userId ?? <span className="muted">anonymous</span>}</td>
                  <td>{v.report ? (v.report.started ? formatMs(v.report.startupMs) : 'never started') : '–'}</td>
                  <td>{v.report ? `${formatMs(v.report.rebufferMs)} (${v.report.rebuffers})` : '–'}</td>
                  <td>{v.report?.rendition ?? '–'}</td>
                  <td>{formatMs(v.report?.latencyMs)}</td>
                  <td>{v.report?.bandwidthKbps != null ? `${v.report.bandwidthKbps} kbps` : '–'}</td>
                  <td>{v.report?.fatalError ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {items.length > SESSIONS_SHOWN && <p className="muted">The newest {SESSIONS_SHOWN} of {items.length}; the CSV has them all.</p>}
        </div>
      )}
    </details>
  );
}

/**
 * The analytics page in a new tab: leaving the broadcaster page would end its WHIP session
 * (the publisher is released on unmount). The token is in localStorage, so the tab is signed in.
 */
export function AnalyticsLink({ id, testid, children }: { id: string; testid: string; children: ReactNode }) {
  return (
    <a href={`/analytics/${encodeURIComponent(id)}`} target="_blank" rel="noopener" data-testid={testid}>
      {children}
    </a>
  );
}

export const LIVE_PANEL_METRICS = ['views', 'peakViewers', 'chatMessages', 'reactions', 'rebufferPercent'] as const;

/** The broadcaster page's numbers while live (refreshed every 10 s), with the analytics link. */
export function LiveAnalyticsPanel({ id, enabled }: { id: string; enabled: boolean }) {
  const { data, error } = useStreamAnalytics(id, { refreshMs: LIVE_PANEL_REFRESH_MS, enabled });
  const summary: AnalyticsSummary | undefined = data?.summary;
  return (
    <section className="card live-analytics" data-testid="live-analytics">
      <h3>
        Live numbers <AnalyticsLink id={id} testid="live-analytics-link">full analytics →</AnalyticsLink>
      </h3>
      {summary ? <Tiles testid="live-analytics-tiles" tiles={summaryTiles(summary, LIVE_PANEL_METRICS)} /> : !error && <p className="muted">Loading…</p>}
      {error ? <p className="error">{analyticsErrorText(error)}</p> : null}
    </section>
  );
}
