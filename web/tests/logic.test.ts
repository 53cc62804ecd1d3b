import { describe, expect, it } from 'vitest';
import { captureConstraints, governorNotice, levelForQuality, levelLabel, senderMaxBitrate, isQualityPreset } from '../src/client/quality';
import { addBatch, emptyOverlay, expire, OVERLAY_MAX_ITEMS, OVERLAY_TTL_MS, reactionNotice } from '../src/client/reactions';
import { elapsedSeconds, formatBitrate, formatDuration } from '../src/client/format';
import { decodeToken, displayName, extractTokenFromHash, isExpired } from '../src/client/auth';
import { orderCodecsH264First } from '../src/client/whip';
import { mergeMessage } from '../src/hooks/useStreamChat';
import { matchRoute } from '../src/app/router';
import { diffPatch } from '../src/app/pages/Settings';
import { localInputToIso } from '../src/app/pages/Schedule';
import type { ChatMessage, Stream } from '../src/client/types';
import { MEMBER_ROLES, roleAtLeast } from '../src/client/types';

describe('quality mapping', () => {
  it('maps presets to capture constraints', () => {
    expect(captureConstraints('1080p')).toMatchObject({ width: { ideal: 1920 }, height: { ideal: 1080 }, frameRate: { ideal: 30, max: 30 } });
    expect(captureConstraints('360p', 'cam2')).toMatchObject({ width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { max: 24 }, deviceId: { exact: 'cam2' } });
  });
  it('caps the sender bitrate by the preset and the stream limit', () => {
    expect(senderMaxBitrate('720p')).toBe(1_500_000);
    expect(senderMaxBitrate('720p', 900)).toBe(900_000);
    expect(senderMaxBitrate('480p', 5000)).toBe(800_000);
    expect(senderMaxBitrate('480p', null)).toBe(800_000);
  });
  const levels = [{ height: 360 }, { height: 480 }, { height: 720 }, { height: 1080 }];
  it('picks the hls.js level for a viewer choice', () => {
    expect(levelForQuality(levels, 'auto')).toBe(-1);
    expect(levelForQuality(levels, '720p')).toBe(2);
    expect(levelForQuality([{ height: 360 }, { height: 480 }], '1080p')).toBe(1);
    expect(levelForQuality([{ height: 720 }, { height: 480 }], '360p')).toBe(1);
    expect(levelForQuality([], '720p')).toBe(-1);
  });
  it('labels levels and recognises presets', () => {
    expect(levelLabel({ height: 480 })).toBe('480p');
    expect(levelLabel({ height: 0 })).toBe('audio');
    expect(isQualityPreset('720p')).toBe(true);
    expect(isQualityPreset('4k')).toBe(false);
  });
});

describe('reaction overlay state', () => {
  it('adds every sample of a batch and the batch totals', () => {
    let s = emptyOverlay();
    s = addBatch(s, { total: 5, counts: { '🔥': 4, '👏': 1 }, samples: [{ emoji: '🔥', positionX: 10, positionY: 90 }, { emoji: '👏', positionX: null, positionY: null }] }, 1000, () => 0.5);
    expect(s.total).toBe(5);
    expect(s.counts).toEqual({ '🔥': 4, '👏': 1 });
    expect(s.items.map((i) => [i.emoji, i.x, i.y])).toEqual([['🔥', 10, 90], ['👏', 50, 87.5]]);
    s = addBatch(s, { total: 1, counts: { '🔥': 1 }, samples: [{ emoji: '🔥', positionX: 150, positionY: -3 }] }, 2000);
    expect(s.total).toBe(6);
    expect(s.counts['🔥']).toBe(5);
    expect(s.items[2]).toMatchObject({ x: 100, y: 0, id: 3 });
  });
  it('expires old items and keeps the same object when nothing expired', () => {
    let s = addBatch(emptyOverlay(), { total: 1, counts: {}, samples: [{ emoji: '🎉', positionX: 1, positionY: 1 }] }, 0);
    s = addBatch(s, { total: 1, counts: {}, samples: [{ emoji: '👍', positionX: 1, positionY: 1 }] }, 2000);
    expect(expire(s, 1000)).toBe(s);
    const later = expire(s, OVERLAY_TTL_MS + 1);
    expect(later.items.map((i) => i.emoji)).toEqual(['👍']);
    expect(later.total).toBe(2);
  });
  it('keeps at most OVERLAY_MAX_ITEMS, newest last', () => {
    const samples = Array.from({ length: OVERLAY_MAX_ITEMS + 10 }, (_, i) => ({ emoji: String(i), positionX: 0, positionY: 0 }));
    const s = addBatch(emptyOverlay(), { total: samples.length, counts: {}, samples }, 0);
    expect(s.items).toHaveLength(OVERLAY_MAX_ITEMS);
    expect(s.items[s.items.length - 1].emoji).toBe(String(OVERLAY_MAX_ITEMS + 9));
  });
});

describe('formatting', () => {
  it('formats durations', () => {
    expect(formatDuration(0)).toBe('0:00');
    expect(formatDuration(65.9)).toBe('1:05');
    expect(formatDuration(3725)).toBe('1:02:05');
    expect(formatDuration(-4)).toBe('0:00');
    expect(formatDuration(NaN)).toBe('0:00');
  });
  it('computes elapsed seconds from startedAt', () => {
    expect(elapsedSeconds('2026-11-23T20:00:00.000Z', Date.parse('2026-11-23T20:01:30.000Z'))).toBe(90);
    expect(elapsedSeconds(null)).toBe(0);
    expect(elapsedSeconds('garbage')).toBe(0);
  });
  it('formats bitrates', () => {
    expect(formatBitrate(800)).toBe('800 kbps');
    expect(formatBitrate(2500)).toBe('2.5 Mbps');
    expect(formatBitrate(null)).toBe('–');
  });
});

const b64u = (o: unknown) => {
  const bytes = new TextEncoder().encode(JSON.stringify(o));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
};
const jwt = (claims: unknown) => `${b64u({ alg: 'HS256', typ: 'JWT' })}.${b64u(claims)}.sig`;

describe('tokens', () => {
  it('decodes a JWT payload (UTF-8 names too)', () => {
    const c = decodeToken(jwt({ sub: 'bob', name: 'Böb 🎉', exp: 100 }));
    expect(c).toMatchObject({ sub: 'bob', name: 'Böb 🎉' });
    expect(displayName(c)).toBe('Böb 🎉');
    expect(displayName(decodeToken(jwt({ sub: 'x' })))).toBe('x');
    expect(isExpired(c, 100_001)).toBe(true);
    expect(isExpired(c, 99_000)).toBe(false);
  });
  it('refuses things that are not a JWT with a sub', () => {
    expect(decodeToken('abc')).toBeNull();
    expect(decodeToken(jwt({ name: 'no sub' }))).toBeNull();
    expect(decodeToken('a.!!!.c')).toBeNull();
    expect(decodeToken(null)).toBeNull();
  });
  it('extracts the token from the fragment, keeping the rest', () => {
    expect(extractTokenFromHash('#token=abc.def.ghi')).toEqual({ token: 'abc.def.ghi', rest: '' });
    expect(extractTokenFromHash('#x=1&token=t&y=2')).toEqual({ token: 't', rest: 'x=1&y=2' });
    expect(extractTokenFromHash('#section')).toEqual({ token: null, rest: 'section' });
    expect(extractTokenFromHash('')).toEqual({ token: null, rest: '' });
  });
});

describe('WHIP codec order', () => {
  it('puts H.264 first, packetization-mode=1 and baseline before others', () => {
    const codecs = [
      { mimeType: 'video/VP8' },
      { mimeType: 'video/H264', sdpFmtpLine: 'packetization-mode=0;profile-level-id=42e01f' },
      { mimeType: 'video/H264', sdpFmtpLine: 'packetization-mode=1;profile-level-id=640c1f' },
      { mimeType: 'video/H264', sdpFmtpLine: 'packetization-mode=1;profile-level-id=42e01f' },
      { mimeType: 'video/AV1' },
    ];
    expect(orderCodecsH264First(codecs).map((c) => `${c.mimeType} ${c.sdpFmtpLine ?? ''}`.trim())).toEqual([
      'video/H264 packetization-mode=1;profile-level-id=42e01f',
      'video/H264 packetization-mode=1;profile-level-id=640c1f',
      'video/H264 packetization-mode=0;profile-level-id=42e01f',
      'video/VP8',
      'video/AV1',
    ]);
  });
});

const msg = (id: string, createdAt: string, extra: Partial<ChatMessage> = {}): ChatMessage => ({
  id, streamId: 's', authorId: 'a', authorName: 'A', content: id, createdAt, isPinned: false, deleted: false, ...extra,
});

describe('chat list merging', () => {
  it('dedupes by id, orders by time, drops deleted', () => {
    let l: ChatMessage[] = [];
    l = mergeMessage(l, msg('2', '2026-01-01T00:00:02Z'));
    l = mergeMessage(l, msg('1', '2026-01-01T00:00:01Z'));
    l = mergeMessage(l, msg('2', '2026-01-01T00:00:02Z', { content: 'edited' }));
    expect(l.map((m) => m.content)).toEqual(['1', 'edited']);
    l = mergeMessage(l, msg('1', '2026-01-01T00:00:01Z', { deleted: true }));
    expect(l.map((m) => m.id)).toEqual(['2']);
  });
  it('keeps the newest max messages', () => {
    let l: ChatMessage[] = [];
    for (let i = 0; i < 5; i++) l = mergeMessage(l, msg(String(i), `2026-01-01T00:00:0${i}Z`), 3);
    expect(l.map((m) => m.id)).toEqual(['2', '3', '4']);
  });
});

describe('routing', () => {
  it('matches patterns with params', () => {
    expect(matchRoute('/watch/:id', '/watch/01ABC')).toEqual({ id: '01ABC' });
    expect(matchRoute('/watch/:id', '/watch/01ABC/')).toEqual({ id: '01ABC' });
    expect(matchRoute('/watch/:id', '/broadcast/01ABC')).toBeNull();
    expect(matchRoute('/broadcast', '/broadcast')).toEqual({});
    expect(matchRoute('/settings/:id', '/settings/a%20b')).toEqual({ id: 'a b' });
  });
});

const stream = (): Stream => ({
  id: 's', channelId: 'c', ownerId: 'o', title: 'T', description: 'D', thumbnailUrl: null, status: 'preparing',
  scheduledAt: null, startedAt: null, endedAt: null, createdAt: '', updatedAt: '',
  settings: { quality: '1080p', maxBitrateKbps: null, chatEnabled: true, reactionsEnabled: true, chatMode: 'open', slowModeSeconds: 0,
    notifications: { audience: 'followers', atStart: true, reminders: [60] } },
  visibility: 'public',
  stats: { currentViewers: 0, peakViewers: 0, totalViews: 0, messages: 0, reactions: 0 }, pinnedMessageId: null, version: 1,
});

describe('settings patch', () => {
  const form = { title: 'T', description: 'D', quality: '1080p' as const, maxBitrateKbps: '', chatEnabled: true, reactionsEnabled: true, chatMode: 'open' as const, slowModeSeconds: '0', visibility: 'public' as const, notifyAudience: 'followers' as const, notifyAtStart: true, notifyReminders: [60] };
  it('is empty when nothing changed', () => {
    expect(diffPatch(stream(), form)).toEqual({});
  });
  it('replaces the notification settings whole, keeping the reminders', () => {
    expect(diffPatch(stream(), { ...form, notifyAudience: 'subscribers' })).toEqual({
      settings: { notifications: { audience: 'subscribers', atStart: true, reminders: [60] } },
    });
  });
  it('sends the reminders whole when they change', () => {
    expect(diffPatch(stream(), { ...form, notifyReminders: [60, 15] })).toEqual({
      settings: { notifications: { audience: 'followers', atStart: true, reminders: [60, 15] } },
    });
    expect(diffPatch(stream(), { ...form, notifyReminders: [] })).toEqual({
      settings: { notifications: { audience: 'followers', atStart: true, reminders: [] } },
    });
  });
  it('sends only changed fields, with numbers and null for a cleared limit', () => {
    expect(diffPatch(stream(), { ...form, title: 'New', quality: '720p', slowModeSeconds: '5', maxBitrateKbps: '2500', chatMode: 'followers' })).toEqual({
      title: 'New',
      settings: { quality: '720p', slowModeSeconds: 5, maxBitrateKbps: 2500, chatMode: 'followers' },
    });
    const s = stream();
    s.settings.maxBitrateKbps = 1000;
    expect(diffPatch(s, form)).toEqual({ settings: { maxBitrateKbps: null } });
    expect(diffPatch(stream(), { ...form, visibility: 'members' })).toEqual({ visibility: 'members' });
  });
  it('converts the schedule picker value to ISO', () => {
    const iso = localInputToIso('2030-05-06T07:08');
    expect(iso).toBe(new Date('2030-05-06T07:08').toISOString());
    expect(localInputToIso('')).toBeNull();
    expect(localInputToIso('nope')).toBeNull();
  });
});

import { playlistUrl, withGrant } from '../src/client/playlist';
describe('members-only media grant', () => {
  const grant = 'Policy=eyJ~&Signature=MEUC-_&Key-Pair-Id=K1&Hash-Algorithm=SHA256';
  it('goes on every media request, after any query, once', () => {
    expect(withGrant('http://h/hls/members/s/master.m3u8', grant)).toBe(`http://h/hls/members/s/master.m3u8?${grant}`);
    expect(withGrant('http://h/hls/members/s/v0/seg-000001.m4s?x=1', grant)).toBe(`http://h/hls/members/s/v0/seg-000001.m4s?x=1&${grant}`);
    const signed = withGrant('http://h/a.m3u8', grant);
    expect(withGrant(signed, grant)).toBe(signed);
    expect(playlistUrl(signed, 35)).toBe(`${signed}&_rill=z`);
  });
  it('leaves public media alone', () => {
    expect(withGrant('http://h/hls/live/s/master.m3u8', null)).toBe('http://h/hls/live/s/master.m3u8');
    expect(withGrant('http://h/hls/live/s/master.m3u8', undefined)).toBe('http://h/hls/live/s/master.m3u8');
  });
});

describe('playlist cache busting', () => {
  it('adds a per-request query to playlists only', () => {
    expect(playlistUrl('http://h/hls/live/s/480p/index.m3u8', 35)).toBe('http://h/hls/live/s/480p/index.m3u8?_rill=z');
    expect(playlistUrl('http://h/master.m3u8?a=1', 36)).toBe('http://h/master.m3u8?a=1&_rill=10');
    expect(playlistUrl('http://h/hls/live/s/480p/seg-000001.m4s', 1)).toBe('http://h/hls/live/s/480p/seg-000001.m4s');
  });
});

import { upsertQuestion } from '../src/hooks/useStreamQuestions';
import type { Question } from '../src/client/types';
describe('questions ordering', () => {
  const q = (id: string, upvotes: number, createdAt: string): Question => ({ id, streamId: 's', authorId: 'a', authorName: 'A', content: id, createdAt, upvotes, answered: false });
  it('keeps most upvoted first, then oldest, replacing by id', () => {
    let l: Question[] = [];
    l = upsertQuestion(l, q('a', 0, '2026-01-01T00:00:01Z'));
    l = upsertQuestion(l, q('b', 0, '2026-01-01T00:00:02Z'));
    l = upsertQuestion(l, q('c', 2, '2026-01-01T00:00:03Z'));
    expect(l.map((x) => x.id)).toEqual(['c', 'a', 'b']);
    l = upsertQuestion(l, q('b', 3, '2026-01-01T00:00:02Z'));
    expect(l.map((x) => `${x.id}${x.upvotes}`)).toEqual(['b3', 'c2', 'a0']);
  });
});

import { mayHaveMedia } from '../src/hooks/useStreamViewer';
import { loadIngest, saveIngest } from '../src/hooks/useLiveStream';
describe('viewer and broadcaster state helpers', () => {
  it('waits for media only when the stream can have some', () => {
    expect(mayHaveMedia({ status: 'preparing', startedAt: null })).toBe(true);
    expect(mayHaveMedia({ status: 'live', startedAt: 'x' })).toBe(true);
    expect(mayHaveMedia({ status: 'ended', startedAt: 'x' })).toBe(true);
    expect(mayHaveMedia({ status: 'ended', startedAt: null })).toBe(false);
    expect(mayHaveMedia({ status: 'scheduled', startedAt: null })).toBe(false);
    expect(mayHaveMedia({ status: 'cancelled', startedAt: null })).toBe(false);
    expect(mayHaveMedia(null)).toBe(false);
  });
  it('keeps the stream key per stream in session storage', () => {
    const m = new Map<string, string>();
    const storage = { getItem: (k: string) => m.get(k) ?? null, setItem: (k: string, v: string) => void m.set(k, v) } as unknown as Storage;
    saveIngest('s1', { streamKey: 'k', whipUrl: 'http://w/whip/s1' }, storage);
    expect(loadIngest('s1', storage)).toEqual({ streamKey: 'k', whipUrl: 'http://w/whip/s1' });
    expect(loadIngest('s2', storage)).toBeNull();
    m.set('rill.streamKey.s3', '{broken');
    expect(loadIngest('s3', storage)).toBeNull();
  });
});

describe('governor notice', () => {
  it('says nothing at full quality and explains a reduced level', () => {
    expect(governorNotice(0)).toBeNull();
    expect(governorNotice(undefined)).toBeNull();
    expect(governorNotice(2)).toContain('Reduced quality to stay live');
    expect(governorNotice(2)).toContain('level 2 of 5');
  });
  it('clamps nonsense', () => {
    expect(governorNotice(99)).toContain('level 5 of 5');
    expect(governorNotice(-3)).toBeNull();
    expect(governorNotice(Number.NaN)).toBeNull();
  });
});

describe('channel roles', () => {
  it('rank as rill_core::channel does, each including those below', () => {
    expect(roleAtLeast('broadcaster', 'moderator')).toBe(true);
    expect(roleAtLeast('owner', 'broadcaster')).toBe(true);
    expect(roleAtLeast('subscriber', 'moderator')).toBe(false);
    expect(roleAtLeast(null, 'follower')).toBe(false);
    expect(MEMBER_ROLES).not.toContain('owner');
  });
});

describe('refused reactions', () => {
  it('are told to the viewer; other refusals are left to chat', () => {
    expect(reactionNotice('reaction_late')).toMatch(/too late/);
    expect(reactionNotice('reactions_disabled')).toMatch(/turned off/);
    expect(reactionNotice('not_live')).toMatch(/live/);
    expect(reactionNotice('slow_mode')).toBeNull();
  });
});
