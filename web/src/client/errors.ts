import type { ErrorCode } from './types';

/** Every failed API call is thrown as an ApiError (server errors keep their code/field). */
export class ApiError extends Error {
  readonly code: ErrorCode | string;
  readonly status: number;
  readonly field?: string;

  constructor(status: number, code: ErrorCode | string, message: string, field?: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

/** Maps a non-2xx response body (already read as text) to an ApiError. */
export function errorFromResponse(status: number, body: string): ApiError {
  try {
    const parsed = JSON.parse(body) as unknown;
    const err = (parsed as { error?: { code?: unknown; message?: unknown; field?: unknown } })?.error;
    if (err && typeof err.code === 'string') {
      return new ApiError(
        status,
        err.code,
        typeof err.message === 'string' ? err.message : err.code,
        typeof err.field === 'string' ? err.field : undefined,
      );
    }
  } catch {
    // not JSON: fall through
  }
  const fallback: Record<number, ErrorCode> = {
    400: 'invalid_body', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found',
    405: 'method_not_allowed', 409: 'conflict',
    413: 'payload_too_large', 415: 'unsupported_media_type', 422: 'validation_failed', 429: 'rate_limited',
  };
  const code = fallback[status] ?? (status >= 500 ? 'internal' : 'bad_response');
  const text = body.trim().slice(0, 200);
  return new ApiError(status, code, text || `HTTP ${status}`);
}
