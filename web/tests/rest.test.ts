import { describe, expect, it } from 'vitest';
import { ApiError, errorFromResponse } from '../src/client/errors';
import { RillApi, uploadHeaders } from '../src/client/rest';
import { API_ERROR_CODES } from '../src/client/types';
import openapi from '../../functions/api/openapi.json?raw';

type Call = { url: string; init?: RequestInit };

function fakeFetch(status: number, body: unknown, calls: Call[] = []) {
  return async (url: string, init?: RequestInit) => {
    calls.push({ url, init });
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    return new Response(status === 204 ? null : text, { status });
  };
}

describe('errorFromResponse', () => {
  it('keeps code, message and field from the API error body', () => {
    const e = errorFromResponse(422, JSON.stringify({ error: { code: 'validation_failed', message: 'too long', field: 'title' } }));
    expect(e).toBeInstanceOf(ApiError);
    expect([e.status, e.code, e.message, e.field]).toEqual([422, 'validation_failed', 'too long', 'title']);
  });
  it('falls back on the status for non-JSON bodies', () => {
    expect(errorFromResponse(404, 'nope').code).toBe('not_found');
    expect(errorFromResponse(502, '<html>bad gateway</html>').code).toBe('internal');
    expect(errorFromResponse(418, '').message).toBe('HTTP 418');
  });
});

describe('RillApi', () => {
  it('sends the bearer token and JSON body, parses the response', async () => {
    const calls: Call[] = [];
    const api = new RillApi({ baseUrl: 'http://x/', getToken: () => 'jwt', fetch: fakeFetch(201, { id: 's1' }, calls) });
    const s = await api.createStream({ channelId: 'c', title: 't' });
    expect(s.id).toBe('s1');
    expect(calls[0].url).toBe('http://x/api/streams/create');
    expect(calls[0].init?.method).toBe('POST');
    const h = calls[0].init?.headers as Record<string, string>;
    expect(h.Authorization).toBe('Bearer jwt');
    expect(h['Content-Type']).toBe('application/json');
    expect(JSON.parse(String(calls[0].init?.body))).toEqual({ channelId: 'c', title: 't' });
  });

  it('omits Authorization when signed out and builds query strings', async () => {
    const calls: Call[] = [];
    const api = new RillApi({ fetch: fakeFetch(200, { items: [], nextCursor: null }, calls) });
    await api.listScheduled('channel uuid');
    await api.getStreamWithIngest('a/b');
    expect(calls[0].url).toBe('/api/streams/scheduled?channelId=channel+uuid');
    expect(calls[1].url).toBe('/api/streams/a%2Fb?ingest=true');
    expect((calls[0].init?.headers as Record<string, string>).Authorization).toBeUndefined();
  });

  it('throws a typed ApiError for API errors', async () => {
    const api = new RillApi({ fetch: fakeFetch(409, { error: { code: 'invalid_transition', message: 'already ended' } }) });
    await expect(api.endStream('s1')).rejects.toMatchObject({ name: 'ApiError', status: 409, code: 'invalid_transition', message: 'already ended' });
  });

  it('maps network failures to network_error', async () => {
    const api = new RillApi({ fetch: async () => { throw new TypeError('Failed to fetch'); } });
    const err = await api.getStream('s1').catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.code).toBe('network_error');
    expect(err.status).toBe(0);
  });

  it('uploads a thumbnail: presign, PUT with the given headers, PATCH thumbnailUrl', async () => {
    const calls: Call[] = [];
    const replies: Array<[number, unknown]> = [
      [200, { uploadUrl: 'http://s3/put', headers: { 'Content-Type': 'image/png' }, thumbnailUrl: 'http://cdn/t.png', expiresAt: 'x' }],
      [200, ''],
      [200, { id: 's1', thumbnailUrl: 'http://cdn/t.png' }],
    ];
    const api = new RillApi({
      fetch: async (url, init) => {
        calls.push({ url, init });
        const [status, body] = replies.shift()!;
        return new Response(typeof body === 'string' ? body : JSON.stringify(body), { status });
      },
    });
    const file = new Blob([new Uint8Array([1, 2, 3])], { type: 'image/png' });
    const s = await api.uploadThumbnail('s1', file);
    expect(s.thumbnailUrl).toBe('http://cdn/t.png');
    expect(calls.map((c) => `${c.init?.method} ${c.url}`)).toEqual([
      'POST /api/streams/s1/thumbnail',
      'PUT http://s3/put',
      'PATCH /api/streams/s1',
    ]);
    expect(JSON.parse(String(calls[0].init?.body))).toEqual({ contentType: 'image/png', contentLength: 3 });
    expect(calls[1].init?.headers).toEqual({ 'Content-Type': 'image/png' });
    expect(JSON.parse(String(calls[2].init?.body))).toEqual({ thumbnailUrl: 'http://cdn/t.png' });
  });

  it('refuses thumbnails of the wrong type or size before any request', async () => {
    const calls: Call[] = [];
    const api = new RillApi({ fetch: fakeFetch(200, {}, calls) });
    await expect(api.uploadThumbnail('s1', new Blob(['x'], { type: 'image/gif' }))).rejects.toMatchObject({ code: 'unsupported_media_type' });
    await expect(api.uploadThumbnail('s1', new Blob([new Uint8Array(2 * 1024 * 1024 + 1)], { type: 'image/jpeg' }))).rejects.toMatchObject({
      code: 'payload_too_large',
    });
    expect(calls).toHaveLength(0);
  });

  it('explains a missing thumbnail endpoint', async () => {
    const api = new RillApi({ fetch: fakeFetch(404, { error: { code: 'not_found', message: 'no route' } }) });
    const err = await api.uploadThumbnail('s1', new Blob(['x'], { type: 'image/webp' })).catch((e) => e);
    expect(err.message).toMatch(/not available on this server/);
  });
});

describe('uploadHeaders', () => {
  it('keeps the signed headers and drops the trace id and browser-owned ones', () => {
    expect(uploadHeaders({ 'cache-control': 'public, max-age=300', 'content-type': 'image/png', 'x-amzn-trace-id': 'Root=1', 'Content-Length': '70' })).toEqual({
      'cache-control': 'public, max-age=300',
      'content-type': 'image/png',
    });
    expect(uploadHeaders(undefined)).toEqual({});
  });
});

describe('API_ERROR_CODES', () => {
  it('lists exactly the error codes the OpenAPI document defines', () => {
    const documented: string[] = JSON.parse(openapi).components.schemas.ErrorCode.enum;
    expect([...API_ERROR_CODES].sort()).toEqual([...documented].sort());
  });
});
