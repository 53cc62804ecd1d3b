import { backoffDelay, type BackoffOptions } from './backoff';
import type { QoeReport } from './qoe';
import type { ChatMessage, Emoji, Notification, QualitySample, Question, Stream } from './types';

export interface ReactionSample {
  emoji: Emoji | string;
  positionX: number | null;
  positionY: number | null;
}

export interface ReactionBatch {
  total: number;
  counts: Record<string, number>;
  samples: ReactionSample[];
}

/**
 * Server event `type` -> `data` shape on a stream's socket (functions/api/src/ws.rs,
 * fanout.rs). A notifications socket (no stream id) carries only `stream:start` and
 * `stream:scheduled-reminder`, both with a `Notification` as `data`
 * (functions/api/src/notifications.rs): read them with `onAny` and the event type alone.
 */
export interface EventDataMap {
  'stream:start': { stream: Stream };
  'stream:scheduled-reminder': Notification;
  'stream:end': { stream: Stream };
  'stream:quality-update': QualitySample;
  'stream:viewer-joined': { userId: string | null; displayName: string | null; count?: number };
  'stream:viewer-left': { userId: string | null; displayName: string | null };
  'stream:viewer-count': { count: number; peak: number };
  'stream:chat-message': ChatMessage;
  'stream:chat-deleted': { messageId: string };
  'stream:chat-pinned': { messageId: string };
  'stream:reaction': ReactionBatch;
  'stream:question': { question: Question };
}

export type EventType = keyof EventDataMap;
export const EVENT_TYPES: readonly EventType[] = [
  'stream:start', 'stream:end', 'stream:quality-update', 'stream:viewer-joined', 'stream:viewer-left',
  'stream:viewer-count', 'stream:chat-message', 'stream:chat-deleted', 'stream:chat-pinned',
  'stream:reaction', 'stream:question', 'stream:scheduled-reminder',
];

export type RillEvent = { [K in EventType]: { type: K; streamId: string; data: EventDataMap[K]; ts: number } }[EventType];

export type ServerFrame =
  | { kind: 'event'; event: RillEvent }
  | { kind: 'error'; code: string; message: string; ts: number }
  | { kind: 'pong'; ts: number };

export type ClientFrame =
  | { action: 'chat'; content: string }
  | { action: 'react'; emoji: string; positionX?: number | null; positionY?: number | null }
  | { action: 'question'; content: string }
  | ({ action: 'heartbeat' } & QoeReport)
  | { action: 'ping' };

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** Parses one server frame; null for anything that is not a known frame. */
export function parseServerFrame(raw: string): ServerFrame | null {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return null;
  }
  if (!isObj(v) || typeof v.type !== 'string') return null;
  const ts = typeof v.ts === 'number' ? v.ts : Date.now();
  if (v.type === 'pong') return { kind: 'pong', ts };
  if (v.type === 'error') {
    const d = isObj(v.data) ? v.data : isObj(v.error) ? v.error : {};
    return {
      kind: 'error',
      code: typeof d.code === 'string' ? d.code : 'unknown',
      message: typeof d.message === 'string' ? d.message : 'error',
      ts,
    };
  }
  if (!(EVENT_TYPES as readonly string[]).includes(v.type) || !isObj(v.data)) return null;
  return {
    kind: 'event',
    event: { type: v.type, streamId: typeof v.streamId === 'string' ? v.streamId : '', data: v.data, ts } as RillEvent,
  };
}

export type ConnectionStatus = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface WebSocketLike {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
}

export interface EventsClientOptions {
  /** e.g. ws://127.0.0.1:3000/ws */
  url: string;
  streamId: string;
  token?: string | null;
  /** The token to use at each (re)connect, when it can change (renewed sign-in); wins over `token`. */
  getToken?: () => string | null;
  backoff?: BackoffOptions;
  pingIntervalMs?: number;
  maxQueue?: number;
  createSocket?: (url: string) => WebSocketLike;
  random?: () => number;
}

type Handler<T> = (v: T) => void;

/** Builds the socket URL: `<url>?streamId=<id>&token=<jwt>`; no stream id: a notifications socket. */
export function socketUrl(base: string, streamId: string, token?: string | null): string {
  const u = new URL(base);
  if (streamId) u.searchParams.set('streamId', streamId);
  if (token) u.searchParams.set('token', token);
  return u.toString();
}

/** Same-origin socket URL for a page at `loc` (http -> ws, https -> wss). */
export function defaultSocketBase(loc: { protocol: string; host: string } = window.location): string {
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/ws`;
}

/**
 * One stream's realtime connection: typed events, reconnect with exponential backoff and
 * jitter, ping keepalive, and a send queue while (re)connecting.
 */
export class EventsClient {
  readonly streamId: string;
  private readonly opts: EventsClientOptions;
  private ws: WebSocketLike | null = null;
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private queue: string[] = [];
  private stopped = true;
  private everOpened = false;
  private handlers = new Map<string, Set<Handler<never>>>();
  private anyHandlers = new Set<Handler<RillEvent>>();
  private errorHandlers = new Set<Handler<{ code: string; message: string }>>();
  private statusHandlers = new Set<Handler<ConnectionStatus>>();
  status: ConnectionStatus = 'closed';

  constructor(opts: EventsClientOptions) {
    this.opts = opts;
    this.streamId = opts.streamId;
  }

  connect(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.open();
  }

  close(): void {
    this.stopped = true;
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      ws.onerror = null;
      ws.onopen = null;
      try { ws.close(1000, 'bye'); } catch { /* already closed */ }
    }
    this.setStatus('closed');
  }

  /** Sends now if open, else queues (bounded; oldest dropped) until the socket opens. */
  send(frame: ClientFrame): void {
    const text = JSON.stringify(frame);
    if (this.ws && this.ws.readyState === 1) {
      this.ws.send(text);
      return;
    }
    this.queue.push(text);
    const max = this.opts.maxQueue ?? 100;
    while (this.queue.length > max) this.queue.shift();
  }

  get queued(): number {
    return this.queue.length;
  }

  on<K extends EventType>(type: K, h: Handler<Extract<RillEvent, { type: K }>>): () => void {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(h as Handler<never>);
    return () => set!.delete(h as Handler<never>);
  }

  onAny(h: Handler<RillEvent>): () => void {
    this.anyHandlers.add(h);
    return () => this.anyHandlers.delete(h);
  }

  onError(h: Handler<{ code: string; message: string }>): () => void {
    this.errorHandlers.add(h);
    return () => this.errorHandlers.delete(h);
  }

  onStatus(h: Handler<ConnectionStatus>): () => void {
    this.statusHandlers.add(h);
    return () => this.statusHandlers.delete(h);
  }

  /** Feeds one raw frame through parsing and dispatch (also used by tests). */
  handleMessage(raw: string): void {
    const f = parseServerFrame(raw);
    if (!f) return;
    if (f.kind === 'error') {
      for (const h of this.errorHandlers) h({ code: f.code, message: f.message });
      return;
    }
    if (f.kind === 'pong') return;
    const set = this.handlers.get(f.event.type);
    if (set) for (const h of set) (h as Handler<RillEvent>)(f.event);
    for (const h of this.anyHandlers) h(f.event);
  }

  private setStatus(s: ConnectionStatus) {
    if (this.status === s) return;
    this.status = s;
    for (const h of this.statusHandlers) h(s);
  }

  private open() {
    const url = socketUrl(this.opts.url, this.opts.streamId, this.opts.getToken ? this.opts.getToken() : this.opts.token);
    this.setStatus(this.everOpened ? 'reconnecting' : 'connecting');
    const create = this.opts.createSocket ?? ((u: string) => new WebSocket(u) as unknown as WebSocketLike);
    let ws: WebSocketLike;
    try {
      ws = create(url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.everOpened = true;
      const pending = this.queue;
      this.queue = [];
      for (const t of pending) ws.send(t);
      this.startPing();
      this.setStatus('open');
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') this.handleMessage(ev.data);
    };
    ws.onerror = () => { /* onclose follows */ };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopPing();
      if (!this.stopped) this.scheduleReconnect();
    };
  }

  private scheduleReconnect() {
    if (this.stopped) return;
    this.setStatus('reconnecting');
    const delay = backoffDelay(this.attempt++, this.opts.backoff, this.opts.random);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.stopped) this.open();
    }, delay);
  }

  private startPing() {
    this.stopPing();
    const every = this.opts.pingIntervalMs ?? 30_000;
    this.pingTimer = setInterval(() => {
      if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify({ action: 'ping' }));
    }, every);
  }

  private stopPing() {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  private clearTimers() {
    this.stopPing();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
  }
}

/** Shares one EventsClient per (stream, identity) between components; refcounted. */
export class EventsRegistry {
  private entries = new Map<string, { client: EventsClient; refs: number }>();
  constructor(private readonly make: (streamId: string, token: string | null, getToken?: () => string | null) => EventsClient) {}

  /** `identity` defaults to the token itself; `getToken` gives reconnects the current token. */
  acquire(streamId: string, token: string | null, identity: string = token ?? '', getToken?: () => string | null): EventsClient {
    const key = `${streamId}|${identity}`;
    let e = this.entries.get(key);
    if (!e) {
      e = { client: this.make(streamId, token, getToken), refs: 0 };
      this.entries.set(key, e);
      e.client.connect();
    }
    e.refs++;
    return e.client;
  }

  release(client: EventsClient): void {
    for (const [key, e] of this.entries) {
      if (e.client !== client) continue;
      e.refs--;
      if (e.refs <= 0) {
        this.entries.delete(key);
        // Deferred so that a quick release/acquire (React StrictMode) could reuse it; simple close here.
        e.client.close();
      }
      return;
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
