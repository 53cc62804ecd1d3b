import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { useRill } from '../../hooks/context';
import type { NotificationSettings, Stream } from '../../client/types';
import { saveIngest } from '../../hooks/useLiveStream';
import { CHANNEL_KEY, ErrorText, ReminderChoices, StatusBadge, defaultChannel } from '../components';
import { Link, navigate } from '../router';

/** `<input type=datetime-local>` value (local time) -> ISO string (UTC). */
export function localInputToIso(v: string): string | null {
  if (!v) return null;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

function inOneHour(): string {
  const d = new Date(Date.now() + 3600_000);
  d.setSeconds(0, 0);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function SchedulePage() {
  const { api, claims } = useRill();
  const [channel, setChannel] = useState(defaultChannel);
  const [title, setTitle] = useState('');
  const [description, setDescription] = useState('');
  const [when, setWhen] = useState(inOneHour);
  const [audience, setAudience] = useState<NotificationSettings['audience']>('followers');
  const [reminders, setReminders] = useState<number[]>([15]);
  const [items, setItems] = useState<Stream[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const load = useCallback(async () => {
    try {
      setItems((await api.listScheduled(channel)).items);
    } catch (e) {
      setError(e);
    }
  }, [api, channel]);
  useEffect(() => {
    localStorage.setItem(CHANNEL_KEY, channel);
    void load();
  }, [load, channel]);

  const act = async (f: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await f();
      await load();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const scheduledAt = localInputToIso(when);
    void act(async () => {
      const created = await api.createStream({
        channelId: channel,
        title: title.trim(),
        description,
        scheduledAt,
        settings: { notifications: { audience, atStart: true, reminders: audience === 'nobody' ? [] : reminders } },
      });
      saveIngest(created.id, { streamKey: created.ingest.streamKey, whipUrl: created.ingest.whipUrl });
      setTitle('');
      setDescription('');
    });
  };

  return (
    <div className="page">
      <h2>Schedule</h2>
      <div className="grid">
        <section className="card">
          <div className="row">
            <label className="inline">
              Channel <input data-testid="schedule-channel" value={channel} onChange={(e) => setChannel(e.target.value.trim())} />
            </label>
          </div>
          <h3>Upcoming</h3>
          {items.length === 0 && <p className="muted">No scheduled streams.</p>}
          <ul className="streams" data-testid="scheduled-list">
            {items.map((s) => (
              <li key={s.id} data-testid="scheduled-item">
                <StatusBadge status={s.status} /> <b>{s.title}</b>{' '}
                <small>{s.scheduledAt ? new Date(s.scheduledAt).toLocaleString() : ''}</small>
                {claims?.sub === s.ownerId && (
                  <span className="actions">
                    <button
                      disabled={busy}
                      onClick={() =>
                        act(async () => {
                          await api.startStream(s.id);
                          navigate(`/broadcast/${s.id}`);
                        })
                      }
                    >
                      Start
                    </button>
                    <button className="danger" disabled={busy} onClick={() => act(() => api.cancelStream(s.id))}>
                      Cancel
                    </button>
                    <Link to={`/settings/${s.id}`}>settings</Link>
                  </span>
                )}
              </li>
            ))}
          </ul>
        </section>
        {claims ? (
          <form className="card form" onSubmit={submit}>
            <h3>Schedule a stream</h3>
            <label>
              Title <input required value={title} onChange={(e) => setTitle(e.target.value)} data-testid="schedule-title" />
            </label>
            <label>
              Description <textarea value={description} onChange={(e) => setDescription(e.target.value)} />
            </label>
            <label>
              Starts at <input type="datetime-local" required value={when} onChange={(e) => setWhen(e.target.value)} data-testid="schedule-when" />
            </label>
            <label>
              Notify the channel&apos;s
              <select value={audience} onChange={(e) => setAudience(e.target.value as NotificationSettings['audience'])} data-testid="schedule-notify-audience">
                <option value="followers">followers</option>
                <option value="subscribers">subscribers</option>
                <option value="nobody">nobody</option>
              </select>
            </label>
            {audience !== 'nobody' && <ReminderChoices value={reminders} onChange={setReminders} />}
            <button type="submit" disabled={busy || !title.trim()} data-testid="schedule-create">
              Schedule
            </button>
          </form>
        ) : (
          <p className="muted">Sign in to schedule streams.</p>
        )}
      </div>
      <ErrorText error={error} />
    </div>
  );
}
