import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useRill } from '../hooks/context';
import { displayName } from '../client/auth';
import { REACTION_EMOJI, type ChatMessage, type Emoji, type StreamStatus } from '../client/types';
import type { FloatingReaction } from '../client/reactions';
import { ApiError } from '../client/errors';
import { Link, navigate } from './router';
import { useNotifications } from '../hooks/useNotifications';
import { saveIngest } from '../hooks/useLiveStream';

export function SignIn() {
  const { claims, setToken, oidc, signIn, signOut, authError } = useRill();
  const [open, setOpen] = useState(false);
  const [value, setValue] = useState('');
  if (claims) {
    return (
      <div className="signin">
        <span data-testid="signed-in-as" title={claims.sub}>
          {displayName(claims)} <small>({claims.sub})</small>
        </span>
        <button className="link" data-testid="sign-out" onClick={signOut}>
          Sign out
        </button>
      </div>
    );
  }
  const error = authError && (
    <span className="error" data-testid="auth-error">
      {authError}
    </span>
  );
  // With an OpenID provider (config.json): its sign-in page, authorization code + PKCE.
  if (oidc) {
    return (
      <div className="signin">
        {error}
        <button data-testid="sign-in" data-mode="oidc" onClick={signIn}>
          Sign in
        </button>
      </div>
    );
  }
  return (
    <div className="signin">
      {error}
      {open ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            setToken(value);
            setValue('');
            setOpen(false);
          }}
        >
          <input data-testid="token-input" placeholder="Paste a JWT" value={value} onChange={(e) => setValue(e.target.value)} />
          <button type="submit">Sign in</button>
        </form>
      ) : (
        <button data-testid="sign-in" onClick={() => setOpen(true)}>
          Sign in
        </button>
      )}
    </div>
  );
}

export function StatusBadge({ status }: { status: StreamStatus | undefined }) {
  if (!status) return null;
  return (
    <span className={`badge badge-${status}`} data-testid="stream-status" data-status={status}>
      {status === 'live' ? '● LIVE' : status}
    </span>
  );
}

export function ChatPanel(props: {
  messages: ChatMessage[];
  isSending: boolean;
  canSend: boolean;
  canModerate?: boolean;
  pinnedMessageId?: string | null;
  error?: ApiError | null;
  onSend: (t: string) => Promise<void>;
  onPin?: (id: string) => void;
  onDelete?: (id: string) => void;
}) {
  const [text, setText] = useState('');
  const [localErr, setLocalErr] = useState<string | null>(null);
  const listRef = useRef<HTMLUListElement>(null);
  useEffect(() => {
    const el = listRef.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [props.messages.length]);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setLocalErr(null);
    try {
      await props.onSend(text);
      setText('');
    } catch (err) {
      setLocalErr(err instanceof Error ? err.message : String(err));
    }
  };
  const pinned = props.messages.find((m) => m.id === props.pinnedMessageId);
  return (
    <section className="chat" data-testid="chat-panel">
      <h3>Chat</h3>
      {pinned && (
        <div className="pinned" data-testid="chat-pinned">
          📌 <b>{pinned.authorName}</b>: {pinned.content}
        </div>
      )}
      <ul ref={listRef} data-testid="chat-messages">
        {props.messages.map((m) => (
          <li key={m.id} data-testid="chat-message" data-message-id={m.id}>
            <b>{m.authorName}</b> <span className="content">{m.content}</span>
            {props.canModerate && (
              <span className="mod">
                <button className="link" title="Pin" onClick={() => props.onPin?.(m.id)}>📌</button>
                <button className="link" title="Delete" onClick={() => props.onDelete?.(m.id)}>✕</button>
              </span>
            )}
          </li>
        ))}
      </ul>
      {props.canSend ? (
        <form onSubmit={submit} className="chat-form">
          <input
            data-testid="chat-input"
            value={text}
            maxLength={500}
            placeholder="Say something"
            onChange={(e) => setText(e.target.value)}
          />
          <button data-testid="chat-send" type="submit" disabled={props.isSending || !text.trim()}>
            Send
          </button>
        </form>
      ) : (
        <p className="muted" data-testid="chat-signin-hint">Sign in to chat.</p>
      )}
      {(localErr || props.error) && <p className="error" data-testid="chat-error">{localErr ?? props.error?.message}</p>}
    </section>
  );
}

export function ReactionOverlay({ items, total }: { items: FloatingReaction[]; total: number }) {
  return (
    <div className="overlay" data-testid="reaction-overlay" data-total={total}>
      {items.map((r) => (
        <span key={r.id} className="float" data-testid="reaction-float" style={{ left: `${r.x}%`, top: `${r.y}%` }}>
          {r.emoji}
        </span>
      ))}
    </div>
  );
}

export function ReactionBar({ onReact, disabled }: { onReact: (e: Emoji) => void; disabled?: boolean }) {
  return (
    <div className="reactions" data-testid="reaction-bar">
      {REACTION_EMOJI.map((e, i) => (
        <button key={e} data-testid={`react-${i}`} disabled={disabled} onClick={() => onReact(e)} aria-label={`react ${e}`}>
          {e}
        </button>
      ))}
    </div>
  );
}

export function ErrorText({ error, testid }: { error: unknown; testid?: string }) {
  if (!error) return null;
  const msg = error instanceof Error ? error.message : String(error);
  return <p className="error" data-testid={testid}>{msg}</p>;
}

export function QuestionsPanel(props: {
  questions: import('../client/types').Question[];
  canAsk: boolean;
  canAnswer: boolean;
  error: string | null;
  onAsk: (t: string) => void;
  onUpvote: (id: string) => void;
  onAnswer: (id: string) => void;
}) {
  const [text, setText] = useState('');
  return (
    <section className="card questions" data-testid="questions-panel">
      <h3>Q&amp;A</h3>
      {props.questions.length === 0 && <p className="muted">No questions yet.</p>}
      <ul className="streams">
        {props.questions.map((q) => (
          <li key={q.id} data-testid="question" className={q.answered ? 'answered' : ''}>
            <button className="link" title="Upvote" disabled={!props.canAsk} onClick={() => props.onUpvote(q.id)}>
              ▲ {q.upvotes}
            </button>{' '}
            <b>{q.authorName}</b> {q.content} {q.answered && <span className="badge">answered</span>}
            {props.canAnswer && !q.answered && (
              <button className="link" onClick={() => props.onAnswer(q.id)}>
                mark answered
              </button>
            )}
          </li>
        ))}
      </ul>
      {props.canAsk && (
        <form
          className="chat-form"
          onSubmit={(e) => {
            e.preventDefault();
            props.onAsk(text);
            setText('');
          }}
        >
          <input data-testid="question-input" maxLength={500} placeholder="Ask a question" value={text} onChange={(e) => setText(e.target.value)} />
          <button type="submit" disabled={!text.trim()}>Ask</button>
        </form>
      )}
      {props.error && <p className="error">{props.error}</p>}
    </section>
  );
}

/** The channel new streams go to: the last one used on this browser. */
export const CHANNEL_KEY = 'rill.channel';
export const defaultChannel = () => localStorage.getItem(CHANNEL_KEY) || 'channel-uuid';

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

/** The signed-in user's unread notifications: a badge, and a list linking to each stream. */
export function NotificationBell() {
  const { claims } = useRill();
  const { items, unread, markRead } = useNotifications();
  const [open, setOpen] = useState(false);
  if (!claims) return null;
  return (
    <div className="bell">
      <button className="link" data-testid="notifications-button" onClick={() => setOpen((o) => !o)} aria-label={`${unread} unread notifications`}>
        Notifications
        {unread > 0 && (
          <span className="badge" data-testid="notifications-badge">
            {unread}
          </span>
        )}
      </button>
      {open && (
        <div className="bell-list card" data-testid="notifications-list">
          {items.length === 0 ? (
            <p className="muted">Nothing new.</p>
          ) : (
            <>
              <ul>
                {items.map((n) => (
                  <li key={n.id}>
                    <Link to={`/watch/${encodeURIComponent(n.streamId)}`} onClick={() => { void markRead([n.id]); setOpen(false); }} data-testid="notification-link">
                      {n.type === 'stream:start' ? 'Live now: ' : `In ${n.minutesBefore ?? '?'} min: `}
                      {n.title}
                    </Link>
                    <small className="muted"> {n.channelId}</small>
                  </li>
                ))}
              </ul>
              <button className="link" data-testid="notifications-read-all" onClick={() => void markRead(items.map((n) => n.id))}>
                Mark all read
              </button>
            </>
          )}
        </div>
      )}
    </div>
  );
}

/** The reminder times offered (minutes before the start; the API takes up to 3 of 1..10080). */
export const REMINDER_CHOICES: ReadonlyArray<[number, string]> = [
  [15, '15 min'],
  [60, '1 hour'],
  [1440, '1 day'],
];

/** Reminders before a scheduled stream, as checkboxes; `value` keeps the API's order (largest first). */
export function ReminderChoices({ value, onChange }: { value: number[]; onChange: (v: number[]) => void }) {
  const toggle = (m: number, on: boolean) =>
    onChange((on ? [...value.filter((x) => x !== m), m] : value.filter((x) => x !== m)).sort((a, b) => b - a));
  return (
    <fieldset className="reminders" data-testid="reminder-choices">
      <legend>Remind the audience before the start</legend>
      {REMINDER_CHOICES.map(([m, label]) => (
        <label className="check" key={m}>
          <input type="checkbox" checked={value.includes(m)} onChange={(e) => toggle(m, e.target.checked)} data-testid={`remind-${m}`} /> {label}
        </label>
      ))}
    </fieldset>
  );
}
