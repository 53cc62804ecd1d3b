// Dev JWTs: taken from the URL fragment (#token=...), kept in localStorage, decoded (not verified).

export const TOKEN_STORAGE_KEY = 'rill.token';

export interface TokenClaims {
  sub: string;
  name?: string;
  exp?: number;
  [k: string]: unknown;
}

function b64urlDecode(s: string): string {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4);
  const bin = atob(b64);
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/** Decodes a JWT payload without verifying it; null when it is not a JWT with a `sub`. */
export function decodeToken(token: string | null | undefined): TokenClaims | null {
  if (!token) return null;
  const parts = token.trim().split('.');
  if (parts.length !== 3) return null;
  try {
    const claims = JSON.parse(b64urlDecode(parts[1])) as unknown;
    if (!claims || typeof claims !== 'object' || typeof (claims as TokenClaims).sub !== 'string') return null;
    return claims as TokenClaims;
  } catch {
    return null;
  }
}

export function isExpired(claims: TokenClaims | null, nowMs = Date.now()): boolean {
  return !!claims && typeof claims.exp === 'number' && claims.exp * 1000 <= nowMs;
}

export function displayName(claims: TokenClaims | null): string {
  if (!claims) return '';
  return typeof claims.name === 'string' && claims.name ? claims.name : claims.sub;
}

/**
 * Pulls `token=...` out of a URL fragment. Returns the token and the fragment left over
 * (other params kept), e.g. `#token=abc&x=1` -> { token: 'abc', rest: 'x=1' }.
 */
export function extractTokenFromHash(hash: string): { token: string | null; rest: string } {
  const h = hash.startsWith('#') ? hash.slice(1) : hash;
  if (!h) return { token: null, rest: '' };
  const params = new URLSearchParams(h);
  const token = params.get('token');
  if (token === null) return { token: null, rest: h };
  params.delete('token');
  return { token, rest: params.toString() };
}

/**
 * At load: take the token from the fragment (if any), store it and clean the address bar
 * (path and query are kept, so `/watch/ID#token=...` keeps the route). Returns the token in use.
 */
export function bootstrapToken(win: Window = window): string | null {
  const { token, rest } = extractTokenFromHash(win.location.hash);
  if (token) {
    try { win.localStorage.setItem(TOKEN_STORAGE_KEY, token); } catch { /* storage off */ }
    const url = win.location.pathname + win.location.search + (rest ? '#' + rest : '');
    win.history.replaceState(win.history.state, '', url);
    return token;
  }
  try { return win.localStorage.getItem(TOKEN_STORAGE_KEY); } catch { return null; }
}

export function storeToken(token: string | null, win: Window = window): void {
  try {
    if (token) win.localStorage.setItem(TOKEN_STORAGE_KEY, token);
    else win.localStorage.removeItem(TOKEN_STORAGE_KEY);
  } catch { /* storage off */ }
}
