import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { useRill } from '../../hooks/context';
import { ApiError } from '../../client/errors';
import { MEMBER_ROLES, roleAtLeast, type Channel, type MemberRole } from '../../client/types';
import { CHANNEL_KEY, ErrorText } from '../components';
import { Link } from '../router';

/** Creates the channel this page names, when nobody has yet. */
function CreateChannel({ id, onCreated }: { id: string; onCreated: (c: Channel) => void }) {
  const { api, claims } = useRill();
  const [name, setName] = useState(id);
  const [error, setError] = useState<unknown>(null);
  if (!claims) return <p className="muted">Sign in to create it.</p>;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    try {
      onCreated(await api.createChannel({ id, name: name.trim() }));
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form className="card form" onSubmit={submit} data-testid="channel-create-form">
      <label>
        Name <input data-testid="channel-name" required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
      </label>
      <button type="submit" disabled={!name.trim()} data-testid="channel-create">Create channel “{id}”</button>
      <ErrorText error={error} />
    </form>
  );
}

/** The owner's and moderators' view of the roles; the owner also grants and revokes. */
function Members({ channel }: { channel: Channel }) {
  const { api } = useRill();
  const [items, setItems] = useState<{ userId: string; role: MemberRole }[]>([]);
  const [user, setUser] = useState('');
  const [role, setRole] = useState<MemberRole>('broadcaster');
  const [error, setError] = useState<unknown>(null);
  const isOwner = channel.yourRole === 'owner';
  const load = useCallback(async () => {
    try {
      const all: { userId: string; role: MemberRole }[] = [];
      let cursor: string | undefined;
      do {
        const page = await api.listMembers(channel.id, { limit: 100, cursor });
        all.push(...page.items);
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      setItems(all);
    } catch (err) {
      setError(err);
    }
  }, [api, channel.id]);
  useEffect(() => void load(), [load]);
  const act = async (f: () => Promise<unknown>) => {
    setError(null);
    try {
      await f();
      await load();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section className="card" data-testid="channel-members">
      <h3>Members</h3>
      {items.length === 0 ? (
        <p className="muted">Nobody holds a role yet.</p>
      ) : (
        <ul>
          {items.map((m) => (
            <li key={m.userId} data-testid="member" data-user-id={m.userId}>
              {m.userId} · <strong>{m.role}</strong>
              {isOwner && (
                <>
                  {' '}
                  <button onClick={() => act(() => api.removeMembership(channel.id, m.userId))}>Revoke</button>
                </>
              )}
            </li>
          ))}
        </ul>
      )}
      {isOwner && (
        <form
          className="row"
          onSubmit={(e) => {
            e.preventDefault();
            void act(async () => {
              await api.setMembership(channel.id, user.trim(), role);
              setUser('');
            });
          }}
        >
          <input data-testid="grant-user" placeholder="user id" required value={user} onChange={(e) => setUser(e.target.value)} />
          <select data-testid="grant-role" value={role} onChange={(e) => setRole(e.target.value as MemberRole)}>
            {MEMBER_ROLES.map((r) => (
              <option key={r} value={r}>{r}</option>
            ))}
          </select>
          <button type="submit" data-testid="grant" disabled={!user.trim()}>Grant</button>
        </form>
      )}
      <ErrorText error={error} />
    </section>
  );
}

export function ChannelPage({ id }: { id: string }) {
  const { api, claims } = useRill();
  const [channel, setChannel] = useState<Channel | null>(null);
  const [missing, setMissing] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const load = useCallback(async () => {
    try {
      setChannel(await api.getChannel(id));
      setMissing(false);
      setError(null);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) setMissing(true);
      else setError(err);
    }
  }, [api, id]);
  useEffect(() => void load(), [load, claims?.sub]);
  const me = claims?.sub;
  const change = async (f: () => Promise<unknown>) => {
    try {
      await f();
      await load();
    } catch (err) {
      setError(err);
    }
  };
  if (missing) {
    return (
      <div className="page">
        <h2>No channel “{id}” yet</h2>
        <CreateChannel id={id} onCreated={(c) => (setChannel(c), setMissing(false))} />
      </div>
    );
  }
  if (!channel) return <div className="page"><ErrorText error={error} /></div>;
  return (
    <div className="page" data-testid="channel-page">
      <h2 data-testid="channel-title">{channel.name}</h2>
      {channel.description && <p>{channel.description}</p>}
      <p className="muted">
        {channel.id} · owner {channel.ownerId} · {channel.streamCount} stream{channel.streamCount === 1 ? '' : 's'} · your role:{' '}
        <strong data-testid="your-role">{channel.yourRole ?? 'none'}</strong>
      </p>
      <div className="row">
        <Link to="/" onClick={() => localStorage.setItem(CHANNEL_KEY, channel.id)}>Streams in this channel</Link>
        {roleAtLeast(channel.yourRole, 'moderator') && (
          <Link to={`/channel/${encodeURIComponent(channel.id)}/analytics`} data-testid="channel-analytics-link">Analytics</Link>
        )}
        {me && channel.yourRole === null && (
          <button data-testid="follow" onClick={() => change(() => api.setMembership(channel.id, me, 'follower'))}>Follow</button>
        )}
        {me && channel.yourRole !== null && channel.yourRole !== 'owner' && (
          <button data-testid="leave" onClick={() => change(() => api.removeMembership(channel.id, me))}>Leave</button>
        )}
      </div>
      {!me && <p className="muted">Sign in to follow this channel.</p>}
      {roleAtLeast(channel.yourRole, 'broadcaster') ? (
        <p className="muted">You may create streams in this channel.</p>
      ) : (
        me && <p className="muted">Only the owner and broadcasters create streams here.</p>
      )}
      {roleAtLeast(channel.yourRole, 'moderator') && <Members channel={channel} />}
      <ErrorText error={error} />
    </div>
  );
}
