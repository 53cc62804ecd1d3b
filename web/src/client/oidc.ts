// Sign-in with an OpenID provider: authorization code + PKCE (S256), as a public client (no
// secret), against the endpoints named in the app's /config.json. On AWS that is Cognito's
// hosted UI (the template's user pool); in the browser e2e, scripts/test_idp.py. Without a
// config the app keeps its development sign-in (a pasted token, or #token=).
//
// The bearer sent to the API is the ID token: its `aud` is the app client (the HTTP API's
// authorizer and the functions check it) and it carries `name` for chat. Tokens are renewed
// with the refresh token a minute before they expire; a refused refresh signs out.

export interface OidcConfig {
  clientId: string;
  authorizeUrl: string;
  tokenUrl: string;
  logoutUrl: string | null;
  scope: string;
}

/** What a sign-in leaves in localStorage. */
export interface OidcSession {
  idToken: string;
  refreshToken: string | null;
  /** Epoch ms when the ID token expires. */
  expiresAt: number;
}

/** In sessionStorage between the redirect to the provider and the way back. */
interface Pending {
  state: string;
  verifier: string;
  nonce: string;
  returnTo: string;
}

export const SESSION_KEY = 'rill.oidc.session';
export const PENDING_KEY = 'rill.oidc.pending';
/** Renew this long before expiry. */
export const REFRESH_MARGIN_MS = 60_000;
/** Never renew sooner than this after the previous renewal (short-lived tokens). */
export const MIN_REFRESH_DELAY_MS = 5_000;

/**
 * `{"auth": {"domain": "https://...", "clientId": "..."}}` (Cognito-style paths under the
 * domain), or explicit `authorizeUrl` / `tokenUrl` / `logoutUrl`. Null when absent or unusable.
 */
export function configFrom(json: unknown): OidcConfig | null {
  const auth = (json as { auth?: Record<string, unknown> } | null)?.auth;
  if (!auth || typeof auth !== 'object') return null;
  const str = (k: string) => (typeof auth[k] === 'string' && (auth[k] as string).trim() ? (auth[k] as string).trim() : null);
  const clientId = str('clientId');
  const domain = str('domain')?.replace(/\/+$/, '') ?? null;
  const authorizeUrl = str('authorizeUrl') ?? (domain && `${domain}/oauth2/authorize`);
  const tokenUrl = str('tokenUrl') ?? (domain && `${domain}/oauth2/token`);
  if (!clientId || !authorizeUrl || !tokenUrl) return null;
  for (const u of [authorizeUrl, tokenUrl]) {
    try {
      const p = new URL(u).protocol;
      if (p !== 'https:' && p !== 'http:') return null;
    } catch {
      return null;
    }
  }
  return {
    clientId,
    authorizeUrl,
    tokenUrl,
    logoutUrl: str('logoutUrl') ?? (domain && `${domain}/logout`),
    scope: str('scope') ?? 'openid profile email',
  };
}

export function base64url(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** 32 random bytes, base64url (43 characters: a valid PKCE verifier). */
export function randomString(bytes = 32): string {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

/** RFC 7636 S256: base64url(SHA-256(verifier)). */
export async function pkceChallenge(verifier: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

export function authorizeUrl(cfg: OidcConfig, p: { redirectUri: string; state: string; challenge: string; nonce: string }): string {
  const u = new URL(cfg.authorizeUrl);
  u.searchParams.set('response_type', 'code');
  u.searchParams.set('client_id', cfg.clientId);
  u.searchParams.set('redirect_uri', p.redirectUri);
  u.searchParams.set('scope', cfg.scope);
  u.searchParams.set('state', p.state);
  u.searchParams.set('nonce', p.nonce);
  u.searchParams.set('code_challenge', p.challenge);
  u.searchParams.set('code_challenge_method', 'S256');
  return u.toString();
}

export function logoutUrl(cfg: OidcConfig, redirectUri: string): string | null {
  if (!cfg.logoutUrl) return null;
  const u = new URL(cfg.logoutUrl);
  u.searchParams.set('client_id', cfg.clientId);
  u.searchParams.set('logout_uri', redirectUri);
  return u.toString();
}

/** The provider's answer in the query string: a code, an error, or nothing to do. */
export function parseCallback(search: string): { code: string; state: string } | { error: string } | null {
  const q = new URLSearchParams(search);
  const error = q.get('error');
  if (error) return { error: q.get('error_description') || error };
  const code = q.get('code');
  const state = q.get('state');
  return code && state ? { code, state } : null;
}

/**
 * Milliseconds until the session should be renewed: a minute before expiry (at once if that
 * has passed); right after a renewal never sooner than MIN_REFRESH_DELAY_MS, so tokens that
 * live less than the margin cannot make it renew in a loop.
 */
export function refreshDelay(session: OidcSession, now: number, afterRenewal = false): number {
  const due = Math.max(0, session.expiresAt - REFRESH_MARGIN_MS - now);
  return afterRenewal ? Math.max(MIN_REFRESH_DELAY_MS, due) : due;
}

/** The redirect URI this app registers: its origin with a trailing slash. */
export function redirectUriFor(loc: { origin: string }): string {
  return `${loc.origin}/`;
}

type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

/** Reads a token endpoint answer into a session; throws with the provider's reason otherwise. */
async function tokenRequest(cfg: OidcConfig, form: Record<string, string>, fetchImpl: Fetch, now: number, keepRefresh: string | null): Promise<OidcSession> {
  const res = await fetchImpl(cfg.tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: cfg.clientId, ...form }).toString(),
  });
  const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok || typeof body.id_token !== 'string') {
    const why = (body.error_description || body.error || `HTTP ${res.status}`) as string;
    throw new OidcError(why, res.status >= 400 && res.status < 500);
  }
  const expiresIn = typeof body.expires_in === 'number' ? body.expires_in : 3600;
  return {
    idToken: body.id_token,
    refreshToken: typeof body.refresh_token === 'string' ? body.refresh_token : keepRefresh,
    expiresAt: now + expiresIn * 1000,
  };
}

export class OidcError extends Error {
  /** True when the provider refused (sign in again); false for a network or server failure (retry). */
  constructor(message: string, readonly refused: boolean) {
    super(message);
  }
}

export function exchangeCode(cfg: OidcConfig, code: string, verifier: string, redirectUri: string, fetchImpl: Fetch = fetch, now = Date.now()) {
  return tokenRequest(cfg, { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: redirectUri }, fetchImpl, now, null);
}

export function refreshSession(cfg: OidcConfig, refreshToken: string, fetchImpl: Fetch = fetch, now = Date.now()) {
  return tokenRequest(cfg, { grant_type: 'refresh_token', refresh_token: refreshToken }, fetchImpl, now, refreshToken);
}

// ------------------------------------------------------------------ browser glue

export async function loadConfig(fetchImpl: Fetch = fetch): Promise<OidcConfig | null> {
  try {
    const res = await fetchImpl('/config.json', { cache: 'no-store' });
    if (!res.ok) return null;
    return configFrom(await res.json());
  } catch {
    return null;
  }
}

/** Sends the browser to the provider's sign-in page, remembering where it was. */
export async function beginSignIn(cfg: OidcConfig, win: Window = window): Promise<void> {
  const pending: Pending = {
    state: randomString(16),
    verifier: randomString(32),
    nonce: randomString(16),
    returnTo: win.location.pathname + win.location.search,
  };
  win.sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  const challenge = await pkceChallenge(pending.verifier);
  win.location.assign(authorizeUrl(cfg, { redirectUri: redirectUriFor(win.location), state: pending.state, challenge, nonce: pending.nonce }));
}

/**
 * On load: when the address carries the provider's answer, trade the code for tokens (once;
 * the state must match what this tab sent) and put the address back where sign-in started.
 * Returns the new session, null when there was nothing to complete; throws on a refusal.
 */
export async function completeSignIn(cfg: OidcConfig, win: Window = window, fetchImpl: Fetch = fetch): Promise<OidcSession | null> {
  const answer = parseCallback(win.location.search);
  if (!answer) return null;
  const raw = win.sessionStorage.getItem(PENDING_KEY);
  win.sessionStorage.removeItem(PENDING_KEY);
  const pending = raw ? (JSON.parse(raw) as Pending) : null;
  win.history.replaceState(win.history.state, '', pending?.returnTo || '/');
  if ('error' in answer) throw new OidcError(answer.error, true);
  if (!pending || pending.state !== answer.state) throw new OidcError('sign-in answer does not match this tab (state)', true);
  const session = await exchangeCode(cfg, answer.code, pending.verifier, redirectUriFor(win.location), fetchImpl);
  saveSession(session, win);
  return session;
}

export function saveSession(s: OidcSession | null, win: Window = window): void {
  try {
    if (s) win.localStorage.setItem(SESSION_KEY, JSON.stringify(s));
    else win.localStorage.removeItem(SESSION_KEY);
  } catch {
    /* storage off */
  }
}

export function loadSession(win: Window = window): OidcSession | null {
  try {
    const s = JSON.parse(win.localStorage.getItem(SESSION_KEY) || 'null') as OidcSession | null;
    return s && typeof s.idToken === 'string' && typeof s.expiresAt === 'number' ? s : null;
  } catch {
    return null;
  }
}
