import { useEffect, useState, type FormEvent } from 'react';
import { useRill } from '../../hooks/context';
import type { ChatMode, NotificationSettings, QualityPreset, Stream, StreamPatch, Visibility } from '../../client/types';
import { QUALITY_PRESETS } from '../../client/quality';
import { MAX_THUMBNAIL_BYTES, THUMBNAIL_TYPES } from '../../client/rest';
import { ApiError } from '../../client/errors';
import { ErrorText, ReminderChoices, StatusBadge } from '../components';
import { Link } from '../router';

interface Form {
  title: string;
  description: string;
  quality: QualityPreset;
  maxBitrateKbps: string;
  chatEnabled: boolean;
  reactionsEnabled: boolean;
  chatMode: ChatMode;
  slowModeSeconds: string;
  visibility: Visibility;
  notifyAudience: NotificationSettings['audience'];
  notifyAtStart: boolean;
  notifyReminders: number[];
}

const NOTIFY_DEFAULTS: NotificationSettings = { audience: 'followers', atStart: true, reminders: [] };

const toForm = (s: Stream): Form => ({
  title: s.title,
  description: s.description,
  quality: s.settings.quality,
  maxBitrateKbps: s.settings.maxBitrateKbps == null ? '' : String(s.settings.maxBitrateKbps),
  chatEnabled: s.settings.chatEnabled,
  reactionsEnabled: s.settings.reactionsEnabled,
  chatMode: s.settings.chatMode,
  slowModeSeconds: String(s.settings.slowModeSeconds),
  visibility: s.visibility ?? 'public',
  notifyAudience: (s.settings.notifications ?? NOTIFY_DEFAULTS).audience,
  notifyAtStart: (s.settings.notifications ?? NOTIFY_DEFAULTS).atStart,
  notifyReminders: (s.settings.notifications ?? NOTIFY_DEFAULTS).reminders,
});

/** Only what changed goes into the PATCH (absent fields keep their value). */
export function diffPatch(s: Stream, f: Form): StreamPatch {
  const p: StreamPatch = {};
  if (f.title !== s.title) p.title = f.title;
  if (f.description !== s.description) p.description = f.description;
  if (f.visibility !== (s.visibility ?? 'public')) p.visibility = f.visibility;
  const settings: NonNullable<StreamPatch['settings']> = {};
  if (f.quality !== s.settings.quality) settings.quality = f.quality;
  const maxB = f.maxBitrateKbps.trim() === '' ? null : Number(f.maxBitrateKbps);
  if (maxB !== s.settings.maxBitrateKbps) settings.maxBitrateKbps = maxB;
  if (f.chatEnabled !== s.settings.chatEnabled) settings.chatEnabled = f.chatEnabled;
  if (f.reactionsEnabled !== s.settings.reactionsEnabled) settings.reactionsEnabled = f.reactionsEnabled;
  if (f.chatMode !== s.settings.chatMode) settings.chatMode = f.chatMode;
  const slow = Number(f.slowModeSeconds || 0);
  if (slow !== s.settings.slowModeSeconds) settings.slowModeSeconds = slow;
  const notify = s.settings.notifications ?? NOTIFY_DEFAULTS;
  const sameReminders = f.notifyReminders.join(',') === notify.reminders.join(',');
  if (f.notifyAudience !== notify.audience || f.notifyAtStart !== notify.atStart || !sameReminders) {
    // The API replaces the notification settings as a whole.
    settings.notifications = { audience: f.notifyAudience, atStart: f.notifyAtStart, reminders: f.notifyReminders };
  }
  if (Object.keys(settings).length) p.settings = settings;
  return p;
}

export function SettingsPage({ id }: { id: string }) {
  const { api } = useRill();
  const [stream, setStream] = useState<Stream | null>(null);
  const [form, setForm] = useState<Form | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api.getStream(id).then((s) => {
      setStream(s);
      setForm(toForm(s));
    }, setError);
  }, [api, id]);

  const set = <K extends keyof Form>(k: K, v: Form[K]) => setForm((f) => (f ? { ...f, [k]: v } : f));

  const save = async (e: FormEvent) => {
    e.preventDefault();
    if (!stream || !form) return;
    const patch = diffPatch(stream, form);
    if (Object.keys(patch).length === 0) {
      setSaved('Nothing to save.');
      return;
    }
    setBusy(true);
    setError(null);
    setSaved(null);
    try {
      const s = await api.updateStream(id, patch);
      setStream(s);
      setForm(toForm(s));
      setSaved(`Saved (version ${s.version}).`);
    } catch (err) {
      setError(err instanceof ApiError && err.field ? new Error(`${err.field}: ${err.message}`) : err);
    } finally {
      setBusy(false);
    }
  };

  const upload = async (file: File | undefined) => {
    if (!file) return;
    setBusy(true);
    setError(null);
    setSaved(null);
    try {
      const s = await api.uploadThumbnail(id, file);
      setStream(s);
      setSaved('Thumbnail updated.');
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  if (!form || !stream) return <div className="page"><ErrorText error={error} />{!error && <p>Loading…</p>}</div>;
  return (
    <div className="page">
      <div className="head">
        <h2>Settings: {stream.title}</h2>
        <StatusBadge status={stream.status} />
        <Link to={`/broadcast/${id}`}>broadcaster</Link> · <Link to={`/analytics/${encodeURIComponent(id)}`} data-testid="analytics-link">analytics</Link>
      </div>
      <div className="grid">
        <form className="card form" onSubmit={save} data-testid="settings-form">
          <label>
            Title <input data-testid="settings-title" required value={form.title} onChange={(e) => set('title', e.target.value)} />
          </label>
          <label>
            Description <textarea value={form.description} onChange={(e) => set('description', e.target.value)} />
          </label>
          <label>
            Visibility
            <select value={form.visibility} onChange={(e) => set('visibility', e.target.value as Visibility)} data-testid="settings-visibility">
              <option value="public">public: listed, anyone watches</option>
              <option value="unlisted">unlisted: anyone with the link watches</option>
              <option value="members">members: the channel's subscribers and up only</option>
            </select>
          </label>
          <label>
            Quality preset
            <select value={form.quality} onChange={(e) => set('quality', e.target.value as QualityPreset)} data-testid="settings-quality">
              {QUALITY_PRESETS.map((q) => (
                <option key={q}>{q}</option>
              ))}
            </select>
          </label>
          <label>
            Bitrate limit (kbps, empty = none)
            <input type="number" min={1} value={form.maxBitrateKbps} onChange={(e) => set('maxBitrateKbps', e.target.value)} />
          </label>
          <label className="check">
            <input type="checkbox" checked={form.chatEnabled} onChange={(e) => set('chatEnabled', e.target.checked)} /> Chat enabled
          </label>
          <label className="check">
            <input type="checkbox" checked={form.reactionsEnabled} onChange={(e) => set('reactionsEnabled', e.target.checked)} /> Reactions enabled
          </label>
          <label>
            Chat mode
            <select value={form.chatMode} onChange={(e) => set('chatMode', e.target.value as ChatMode)}>
              <option value="open">open</option>
              <option value="followers">followers</option>
              <option value="subscribers">subscribers</option>
            </select>
          </label>
          <label>
            Slow mode (seconds)
            <input type="number" min={0} value={form.slowModeSeconds} onChange={(e) => set('slowModeSeconds', e.target.value)} />
          </label>
          <label>
            Notify the channel&apos;s
            <select value={form.notifyAudience} onChange={(e) => set('notifyAudience', e.target.value as NotificationSettings['audience'])} data-testid="settings-notify-audience">
              <option value="followers">followers</option>
              <option value="subscribers">subscribers</option>
              <option value="nobody">nobody</option>
            </select>
          </label>
          <label className="check">
            <input type="checkbox" checked={form.notifyAtStart} onChange={(e) => set('notifyAtStart', e.target.checked)} /> Tell them when it goes live
          </label>
          {stream.status === 'scheduled' && <ReminderChoices value={form.notifyReminders} onChange={(v) => set('notifyReminders', v)} />}
          <button type="submit" className="primary" disabled={busy} data-testid="settings-save">
            Save
          </button>
          {saved && <p className="ok" data-testid="settings-saved">{saved}</p>}
          <ErrorText error={error} />
        </form>
        <section className="card">
          <h3>Thumbnail</h3>
          {stream.thumbnailUrl ? <img className="thumb" src={stream.thumbnailUrl} alt="thumbnail" /> : <p className="muted">None yet.</p>}
          <input
            type="file"
            accept={THUMBNAIL_TYPES.join(',')}
            disabled={busy}
            data-testid="thumbnail-file"
            onChange={(e) => void upload(e.target.files?.[0])}
          />
          <p className="muted">JPEG, PNG or WebP, at most {MAX_THUMBNAIL_BYTES / 1024 / 1024} MiB.</p>
        </section>
      </div>
    </div>
  );
}
