import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { useRill } from '../../hooks/context';
import type { Stream } from '../../client/types';
import { Link, navigate } from '../router';
import { ErrorText, StatusBadge } from '../components';
import { saveIngest } from '../../hooks/useLiveStream';

export const CHANNEL_KEY = 'rill.channel';
export const defaultChannel = () => localStorage.getItem(CHANNEL_KEY) || 'channel-uuid';

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
                  <Link to={`/broadcast/${s.id}`}>broadcast</Link> · <Link to={`/settings/${s.id}`}>settings</Link>
                </>
              )}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function NewStreamForm({ channelId }: { channelId: string }) {
  const { api, claims } = useRill();
  const [title, setTitle] = useState('');
  const [description, setDescription] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const created = await api.createStream({ channelId, title: title.trim(), description });
      saveIngest(created.id, { streamKey: created.ingest.streamKey, whipUrl: created.ingest.whipUrl });
      navigate(`/broadcast/${created.id}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  if (!claims) return <p className="muted">Sign in to create a stream.</p>;
  return (
    <form className="card form" onSubmit={submit} data-testid="new-stream-form">
      <h3>New stream</h3>
      <label>
        Title
        <input data-testid="new-stream-title" required maxLength={200} value={title} onChange={(e) => setTitle(e.target.value)} />
      </label>
      <label>
        Description
        <textarea data-testid="new-stream-description" value={description} onChange={(e) => setDescription(e.target.value)} />
      </label>
      <button data-testid="new-stream-create" disabled={busy || !title.trim()} type="submit">
        {busy ? 'Creating…' : 'Create and open broadcaster'}
      </button>
      <ErrorText error={error} />
    </form>
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
