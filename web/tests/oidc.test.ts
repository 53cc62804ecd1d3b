import { describe, expect, it } from 'vitest';
import {
  MIN_REFRESH_DELAY_MS,
  OidcError,
  authorizeUrl,
  configFrom,
  exchangeCode,
  logoutUrl,
  parseCallback,
  pkceChallenge,
  refreshDelay,
  refreshSession,
} from '../src/client/oidc';

const cognito = configFrom({ auth: { domain: 'https://rill-1.auth.us-east-1.amazoncognito.com/', clientId: 'abc123' } })!;

describe('OpenID config', () => {
  it('derives Cognito hosted-UI endpoints from a domain', () => {
    expect(cognito).toEqual({
      clientId: 'abc123',
      authorizeUrl: 'https://rill-1.auth.us-east-1.amazoncognito.com/oauth2/authorize',
      tokenUrl: 'https://rill-1.auth.us-east-1.amazoncognito.com/oauth2/token',
      logoutUrl: 'https://rill-1.auth.us-east-1.amazoncognito.com/logout',
      scope: 'openid profile email',
    });
  });
  it('takes explicit endpoints and refuses what cannot work', () => {
    expect(configFrom({ auth: { clientId: 'c', authorizeUrl: 'https://idp/a', tokenUrl: 'https://idp/t' } })?.logoutUrl).toBeNull();
    for (const bad of [null, {}, { auth: {} }, { auth: { domain: 'https://x' } }, { auth: { clientId: 'c' } }, { auth: { clientId: 'c', domain: 'javascript:alert(1)' } }]) {
      expect(configFrom(bad)).toBeNull();
    }
  });
});

describe('PKCE and the authorization request', () => {
  it('computes the S256 challenge of RFC 7636 appendix B', async () => {
    expect(await pkceChallenge('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk')).toBe('E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM');
  });
  it('asks for a code with S256 and every parameter the provider checks', () => {
    const u = new URL(authorizeUrl(cognito, { redirectUri: 'https://app/', state: 's', challenge: 'c', nonce: 'n' }));
    expect(Object.fromEntries(u.searchParams)).toEqual({
      response_type: 'code',
      client_id: 'abc123',
      redirect_uri: 'https://app/',
      scope: 'openid profile email',
      state: 's',
      nonce: 'n',
      code_challenge: 'c',
      code_challenge_method: 'S256',
    });
  });
  it('reads the answer: a code with its state, an error, or nothing', () => {
    expect(parseCallback('?code=abc&state=xyz')).toEqual({ code: 'abc', state: 'xyz' });
    expect(parseCallback('?error=access_denied&error_description=no')).toEqual({ error: 'no' });
    expect(parseCallback('?code=abc')).toBeNull();
    expect(parseCallback('?x=1')).toBeNull();
  });
  it('signs out through the provider back to the app', () => {
    expect(logoutUrl(cognito, 'https://app/')).toBe('https://rill-1.auth.us-east-1.amazoncognito.com/logout?client_id=abc123&logout_uri=https%3A%2F%2Fapp%2F');
  });
});

describe('tokens', () => {
  const reply = (status: number, body: unknown) => async () => new Response(JSON.stringify(body), { status });
  it('trades a code for a session that expires when the provider says', async () => {
    const s = await exchangeCode(cognito, 'c', 'v', 'https://app/', reply(200, { id_token: 'id', refresh_token: 'r', expires_in: 300 }), 1_000);
    expect(s).toEqual({ idToken: 'id', refreshToken: 'r', expiresAt: 301_000 });
  });
  it('keeps the refresh token when a renewal does not return one (Cognito)', async () => {
    const s = await refreshSession(cognito, 'r0', reply(200, { id_token: 'id2', expires_in: 60 }), 0);
    expect(s.refreshToken).toBe('r0');
  });
  it('tells a refusal (sign in again) from an outage (retry)', async () => {
    const refused = await refreshSession(cognito, 'r', reply(400, { error: 'invalid_grant' })).catch((e) => e);
    expect(refused).toBeInstanceOf(OidcError);
    expect([refused.refused, refused.message]).toEqual([true, 'invalid_grant']);
    const outage = await refreshSession(cognito, 'r', reply(503, {})).catch((e) => e);
    expect(outage.refused).toBe(false);
  });
  it('renews a minute early, at once when late, never in a tight loop', () => {
    const now = 1_000_000;
    expect(refreshDelay({ idToken: '', refreshToken: 'r', expiresAt: now + 3_600_000 }, now)).toBe(3_540_000);
    expect(refreshDelay({ idToken: '', refreshToken: 'r', expiresAt: now + 10_000 }, now)).toBe(0);
    expect(refreshDelay({ idToken: '', refreshToken: 'r', expiresAt: now + 10_000 }, now, true)).toBe(MIN_REFRESH_DELAY_MS);
  });
});
