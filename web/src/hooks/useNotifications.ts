import { useCallback, useEffect, useState } from 'react';
import type { Notification } from '../client/types';
import { useRill } from './context';

/** How often the list is read again while signed in. */
export const NOTIFICATIONS_POLL_MS = 30_000;

/**
 * The signed-in user's unread notifications ("live now" for streams of channels they belong
 * to), read on mount, every NOTIFICATIONS_POLL_MS and on `refresh()`; `markRead` marks them
 * read and drops them from the list. Signed out: always empty.
 */
export function useNotifications(pollMs: number = NOTIFICATIONS_POLL_MS) {
  const { api, claims } = useRill();
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
