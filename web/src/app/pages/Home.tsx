import { useCallback, useEffect, useState } from 'react';
import { useRill } from '../../hooks/context';
import type { Stream } from '../../client/types';
import { Link } from '../router';
import { CHANNEL_KEY, ErrorText, NewStreamForm, StatusBadge, defaultChannel } from '../components';

function StreamList({ title, items, testid, owner }: { title: string; items: Stream[]; testid: string; owner?: string }) {
  return (
    <section className="card" data-testid={testid}>
      <h3>{title}</h3>
      {items.length === 0 ? (
        <p className="muted">Nothing here.</p>
      ) : (
        <ul className="streams">
          {items.map((s) => (
            <li key={s.id} data-testid="stream-item" data-stream-id={s.id}>
              <StatusBadge status={s.status} /> <Link to={`/watch/${s.id}`}>{s.title}</Link>
              {s.scheduledAt && s.status === 'scheduled' && <small> · {new Date(s.scheduledAt).toLocaleString()}</small>}
              {owner === s.ownerId && (
                <>
                  {' · '}
                  <Link to={`/broadcast/${s.id}`}>broadcast</Link> · <Link to={`/settings/${s.id}`}>settings</Link> ·{' '}
                  <Link to={`/analytics/${s.id}`} data-testid="stream-analytics-link">analytics</Link>
                </>
              )}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function HomePage() {
  const { api, claims } = useRill();
  const [channel, setChannel] = useState(defaultChannel);
  const [lists, setLists] = useState<{ live: Stream[]; scheduled: Stream[]; past: Stream[] }>({ live: [], scheduled: [], past: [] });
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(async () => {
    try {
      const [live, scheduled, past] = await Promise.all([api.listLive(channel), api.listScheduled(channel), api.listPast(channel)]);
      setLists({ live: live.items, scheduled: scheduled.items, past: past.items });
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [api, channel]);
  useEffect(() => {
    localStorage.setItem(CHANNEL_KEY, channel);
    void load();
    const t = setInterval(load, 10_000);
    return () => clearInterval(t);
  }, [load, channel]);
  return (
    <div className="page">
      <div className="row">
        <label className="inline">
          Channel <input data-testid="channel-input" value={channel} onChange={(e) => setChannel(e.target.value.trim())} />
        </label>
        <button onClick={load}>Refresh</button>
        <Link to={`/channel/${encodeURIComponent(channel || 'channel-uuid')}`} data-testid="channel-link">Channel page</Link>
      </div>
      <ErrorText error={error} />
      <div className="grid">
        <div>
          <StreamList title="Live now" items={lists.live} testid="list-live" owner={claims?.sub} />
          <StreamList title="Scheduled" items={lists.scheduled} testid="list-scheduled" owner={claims?.sub} />
          <StreamList title="Past" items={lists.past} testid="list-past" owner={claims?.sub} />
        </div>
        <NewStreamForm channelId={channel || 'channel-uuid'} />
      </div>
    </div>
  );
}
