import { useCallback, useEffect, useRef, useState } from 'react';
import type { Notification } from '../client/types';
import { useRill } from './context';

/** How often the list is read again while signed in. */
export const NOTIFICATIONS_POLL_MS = 30_000;

/**
 * The signed-in user's unread notifications ("live now" and reminders for streams of
 * channels they belong to), read on mount, every NOTIFICATIONS_POLL_MS, on `refresh()` and
 * at once when the user's notifications socket (a socket without a stream id) says a new
 * one was written; `markRead` marks them read and drops them from the list. Signed out:
 * always empty, no socket.
 */
export function useNotifications(pollMs: number = NOTIFICATIONS_POLL_MS) {
  const { api, claims, events, token } = useRill();
  const tokenRef = useRef(token);
  tokenRef.current = token;
  const who = claims?.sub ?? '';
  const [items, setItems] = useState<Notification[]>([]);
  const [error, setError] = useState<unknown>(null);
  const signedIn = Boolean(claims);

  const refresh = useCallback(async () => {
    if (!signedIn) {
      setItems([]);
      return;
    }
    try {
      const page = await api.listNotifications({ unread: true, limit: 50 });
      setItems(page.items);
      setError(null);
    } catch (e) {
      setError(e);
    }
  }, [api, signedIn]);

  useEffect(() => {
    void refresh();
    if (!signedIn) return;
    const timer = setInterval(() => void refresh(), pollMs);
    return () => clearInterval(timer);
  }, [refresh, signedIn, pollMs]);

  // The push names the new notification; the list stays the one source of truth, so a
  // push is a prompt to read it again.
  useEffect(() => {
    if (!signedIn) return;
    const client = events.acquire('', tokenRef.current, `notifications|${who}`, () => tokenRef.current);
    const off = client.onAny((e) => {
      if (e.type === 'stream:start' || e.type === 'stream:scheduled-reminder') void refresh();
    });
    return () => {
      off();
      events.release(client);
    };
  }, [events, signedIn, who, refresh]);

  const markRead = useCallback(
    async (ids: string[]) => {
      if (ids.length === 0) return;
      await api.markNotificationsRead(ids.slice(0, 100));
      setItems((now) => now.filter((n) => !ids.includes(n.id)));
    },
    [api],
  );

  return { items, unread: items.length, error, refresh, markRead };
}
