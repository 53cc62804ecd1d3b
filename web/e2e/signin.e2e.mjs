#!/usr/bin/env node
// Sign-in end to end, the production way: the app's "Sign in" goes to an OpenID provider
// (scripts/test_idp.py standing in for Cognito's hosted UI), comes back with a code, trades
// it with PKCE for RS256 tokens the functions verify against the provider's JWKS (HS256 is
// off), goes live over WHIP, chats both ways, renews its token before expiry and signs out.
// Env: RILL_URL, RILL_IDP (the provider's issuer), RILL_ARTIFACTS, CHROMIUM. Exit 0 = pass.
import { artifactsDir, createAndGoLive, env, launch, log, newPage, reportErrors, runScript, stepper, watchAndPlay } from './lib.mjs';

const OVERALL_MS = Number(process.env.E2E_TIMEOUT_MS || 150_000);
const SESSION_KEY = 'rill.oidc.session';

/** From the page it is on: "Sign in", the provider's form, back to the same page signed in. */
async function signInThroughProvider(page, idp, username, name) {
  const back = page.url();
  // The provider's button, once the app has read config.json (before, it offers a pasted token).
  await page.locator('[data-testid="sign-in"][data-mode="oidc"]').click({ timeout: 15_000 });
  await page.waitForURL((u) => u.toString().startsWith(idp), { timeout: 15_000 });
  const asked = new URL(page.url()).searchParams;
  if (asked.get('code_challenge_method') !== 'S256' || !asked.get('code_challenge')) throw new Error(`no PKCE in ${page.url()}`);
  await page.locator('input[name="username"]').fill(username);
  await page.locator('input[name="name"]').fill(name);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('signed-in-as').getByText(name).waitFor({ timeout: 15_000 });
  const now = new URL(page.url());
  if (now.searchParams.has('code') || now.searchParams.has('state')) throw new Error(`the code stayed in the address bar: ${page.url()}`);
  if (now.pathname !== new URL(back).pathname) throw new Error(`came back to ${now.pathname}, not ${new URL(back).pathname}`);
  const session = await page.evaluate((k) => JSON.parse(localStorage.getItem(k) || 'null'), SESSION_KEY);
  const header = JSON.parse(Buffer.from(session.idToken.split('.')[0], 'base64url').toString());
  if (header.alg !== 'RS256') throw new Error(`expected an RS256 ID token, got ${header.alg}`);
  return session;
}

async function main() {
  const base = env('RILL_URL').replace(/\/$/, '');
  const idp = env('RILL_IDP').replace(/\/$/, '');
  const dir = artifactsDir();
  const errors = [];
  const { browser, close } = await launch();
  const pages = {};
  const { shot, step } = stepper(pages, dir);
  try {
    const owner = await newPage(browser, 'owner', base, errors);
    pages.owner = owner.page;
    await step('owner signs in through the provider (code + PKCE, RS256)', async () => {
      await owner.page.goto(`${base}/`);
      await signInThroughProvider(owner.page, idp, 'olga', 'Olga Owner');
    });
    const id = await step('owner creates a stream and goes live over WHIP', () =>
      createAndGoLive(owner.page, base, null, { title: `sign-in e2e ${new Date().toISOString()}` }),
    );
    await shot('01-live');

    const viewer = await newPage(browser, 'viewer', base, errors);
    pages.viewer = viewer.page;
    const first = await step('viewer signs in on the watch page and comes back to it', async () => {
      await viewer.page.goto(`${base}/watch/${encodeURIComponent(id)}`);
      await viewer.page.getByTestId('watch-page').waitFor({ timeout: 15_000 });
      return signInThroughProvider(viewer.page, idp, 'vic', 'Vic Viewer');
    });
    await step('viewer plays the stream', () => watchAndPlay(viewer.page, base, id, null));

    const chat = async (from, to, text) => {
      await from.getByTestId('chat-input').fill(text);
      await from.getByTestId('chat-send').click();
      await to.getByTestId('chat-messages').getByText(text).waitFor({ timeout: 15_000 });
    };
    await step('chat both ways with the provider-issued tokens', async () => {
      await chat(viewer.page, owner.page, `from Vic ${Date.now()}`);
      await owner.page.getByTestId('chat-messages').getByText('Vic Viewer').first().waitFor({ timeout: 5_000 });
      await chat(owner.page, viewer.page, `from Olga ${Date.now()}`);
    });
    await shot('02-chat');

    await step('the app renews its token a minute before expiry and keeps working', async () => {
      await viewer.page.waitForFunction(
        ([k, old]) => {
          const s = JSON.parse(localStorage.getItem(k) || 'null');
          return s && s.idToken !== old;
        },
        [SESSION_KEY, first.idToken],
        { timeout: 45_000, polling: 500 },
      );
      await chat(viewer.page, owner.page, `after renewal ${Date.now()}`);
    });

    await step('sign-out goes through the provider and leaves no session', async () => {
      await viewer.page.getByTestId('sign-out').click();
      await viewer.page.waitForURL((u) => u.toString().startsWith(base), { timeout: 15_000 });
      await viewer.page.locator('[data-testid="sign-in"][data-mode="oidc"]').waitFor({ timeout: 15_000 });
      const left = await viewer.page.evaluate((k) => [localStorage.getItem(k), localStorage.getItem('rill.token')], SESSION_KEY);
      if (left.some((v) => v)) throw new Error(`tokens left after sign-out: ${JSON.stringify(left)}`);
    });
    await shot('03-signed-out');
  } finally {
    reportErrors(errors);
    await close();
  }
}

runScript(main, OVERALL_MS, 'sign-in e2e');
