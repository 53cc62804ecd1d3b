import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { EventsClient, EventsRegistry, parseServerFrame, socketUrl, type WebSocketLike } from '../src/client/events';

class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = [];
  readyState = 0;
  sent: string[] = [];
  closed = false;
  onopen: ((ev: unknown) => void) | null = null;
  onclose: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  send(d: string) {
    this.sent.push(d);
  }
  close() {
    this.closed = true;
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  drop() {
    this.readyState = 3;
    this.onclose?.({});
  }
  receive(o: unknown) {
    this.onmessage?.({ data: JSON.stringify(o) });
  }
}

const make = (extra: Partial<ConstructorParameters<typeof EventsClient>[0]> = {}) =>
  new EventsClient({
    url: 'ws://127.0.0.1:3000/ws',
    streamId: 's1',
    token: 'tok',
    createSocket: (u) => new FakeSocket(u),
    random: () => 0,
    backoff: { baseMs: 100, jitter: 0.5 },
    ...extra,
  });

describe('parseServerFrame', () => {
  it('parses a typed event', () => {
    const f = parseServerFrame(JSON.stringify({ type: 'stream:viewer-count', streamId: 's1', data: { count: 3, peak: 5 }, ts: 42 }));
    expect(f).toEqual({ kind: 'event', event: { type: 'stream:viewer-count', streamId: 's1', data: { count: 3, peak: 5 }, ts: 42 } });
  });
  it('parses error frames and pongs', () => {
    expect(parseServerFrame('{"type":"error","data":{"code":"slow_mode","message":"wait"},"ts":1}')).toEqual({
      kind: 'error', code: 'slow_mode', message: 'wait', ts: 1,
    });
    expect(parseServerFrame('{"type":"pong","ts":7}')).toEqual({ kind: 'pong', ts: 7 });
  });
  it('rejects garbage, unknown types and events without data', () => {
    expect(parseServerFrame('not json')).toBeNull();
    expect(parseServerFrame('[1,2]')).toBeNull();
    expect(parseServerFrame('{"type":"stream:nope","data":{}}')).toBeNull();
    expect(parseServerFrame('{"type":"stream:start"}')).toBeNull();
  });
});

describe('socketUrl', () => {
  it('adds streamId and the optional token', () => {
    expect(socketUrl('ws://h:1/ws', 'a b', 't')).toBe('ws://h:1/ws?streamId=a+b&token=t');
    expect(socketUrl('ws://h:1/ws', 'x', null)).toBe('ws://h:1/ws?streamId=x');
  });
  it('leaves the stream out for a notifications socket', () => {
    expect(socketUrl('ws://h:1/ws', '', 't')).toBe('ws://h:1/ws?token=t');
  });
  it('parses a pushed reminder as an event', () => {
    const f = parseServerFrame(JSON.stringify({ type: 'stream:scheduled-reminder', streamId: 's', data: { id: 'n', minutesBefore: 15 }, ts: 1 }));
    expect(f?.kind).toBe('event');
  });
});

describe('EventsClient', () => {
  beforeEach(() => {
    FakeSocket.all = [];
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it('dispatches events to typed and catch-all handlers, errors separately', () => {
    const c = make();
    c.connect();
    const ws = FakeSocket.all[0];
    ws.open();
    const chats: string[] = [];
    const any: string[] = [];
    const errs: string[] = [];
    c.on('stream:chat-message', (e) => chats.push(e.data.content));
    c.onAny((e) => any.push(e.type));
    c.onError((e) => errs.push(e.code));
    ws.receive({ type: 'stream:chat-message', streamId: 's1', data: { id: '1', content: 'hi' }, ts: 1 });
    ws.receive({ type: 'stream:reaction', streamId: 's1', data: { total: 1, counts: {}, samples: [] }, ts: 2 });
    ws.receive({ type: 'error', data: { code: 'unauthorized', message: 'sign in' }, ts: 3 });
    expect(chats).toEqual(['hi']);
    expect(any).toEqual(['stream:chat-message', 'stream:reaction']);
    expect(errs).toEqual(['unauthorized']);
  });

  it('unsubscribes handlers', () => {
    const c = make();
    c.connect();
    FakeSocket.all[0].open();
    const seen: number[] = [];
    const off = c.on('stream:viewer-count', (e) => seen.push(e.data.count));
    FakeSocket.all[0].receive({ type: 'stream:viewer-count', streamId: 's1', data: { count: 1, peak: 1 }, ts: 1 });
    off();
    FakeSocket.all[0].receive({ type: 'stream:viewer-count', streamId: 's1', data: { count: 2, peak: 2 }, ts: 2 });
    expect(seen).toEqual([1]);
  });

  it('queues sends until open, then flushes in order', () => {
    const c = make();
    c.connect();
    c.send({ action: 'chat', content: 'a' });
    c.send({ action: 'react', emoji: '🔥' });
    expect(c.queued).toBe(2);
    const ws = FakeSocket.all[0];
    expect(ws.sent).toEqual([]);
    ws.open();
    expect(ws.sent.map((s) => JSON.parse(s).action)).toEqual(['chat', 'react']);
    expect(c.queued).toBe(0);
  });

  it('bounds the queue, dropping the oldest', () => {
    const c = make({ maxQueue: 2 });
    c.connect();
    for (const content of ['1', '2', '3']) c.send({ action: 'chat', content });
    FakeSocket.all[0].open();
    expect(FakeSocket.all[0].sent.map((s) => JSON.parse(s).content)).toEqual(['2', '3']);
  });

  it('reconnects with growing backoff, resubscribes with the same query, resets after open', () => {
    const c = make();
    const statuses: string[] = [];
    c.onStatus((s) => statuses.push(s));
    c.connect();
    FakeSocket.all[0].open();
    FakeSocket.all[0].drop();
    expect(c.status).toBe('reconnecting');
    // attempt 0: 100 ms * (1 - 0.5) + 0 = 50 ms
    vi.advanceTimersByTime(49);
    expect(FakeSocket.all).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(FakeSocket.all).toHaveLength(2);
    expect(FakeSocket.all[1].url).toBe('ws://127.0.0.1:3000/ws?streamId=s1&token=tok');
    FakeSocket.all[1].drop();
    // attempt 1: 100 ms
    vi.advanceTimersByTime(99);
    expect(FakeSocket.all).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(FakeSocket.all).toHaveLength(3);
    FakeSocket.all[2].open();
    expect(c.status).toBe('open');
    FakeSocket.all[2].drop();
    vi.advanceTimersByTime(50);
    expect(FakeSocket.all).toHaveLength(4);
    expect(statuses).toEqual(['connecting', 'open', 'reconnecting', 'open', 'reconnecting']);
  });

  it('pings every interval while open and stops after close', () => {
    const c = make({ pingIntervalMs: 30_000 });
    c.connect();
    const ws = FakeSocket.all[0];
    ws.open();
    vi.advanceTimersByTime(90_000);
    expect(ws.sent.filter((s) => JSON.parse(s).action === 'ping')).toHaveLength(3);
    c.close();
    expect(ws.closed).toBe(true);
    vi.advanceTimersByTime(90_000);
    expect(ws.sent).toHaveLength(3);
    expect(FakeSocket.all).toHaveLength(1);
  });
});

describe('EventsRegistry', () => {
  it('shares one client per stream and token and closes it on the last release', () => {
    let made = 0;
    const closed: string[] = [];
    const reg = new EventsRegistry((id) => {
      made++;
      const c = make({ streamId: id });
      const orig = c.close.bind(c);
      c.close = () => {
        closed.push(id);
        orig();
      };
      return c;
    });
    const a = reg.acquire('s1', 't');
    const b = reg.acquire('s1', 't');
    expect(a).toBe(b);
    expect(made).toBe(1);
    reg.release(a);
    expect(closed).toEqual([]);
    reg.release(b);
    expect(closed).toEqual(['s1']);
    expect(reg.size).toBe(0);
  });
});
