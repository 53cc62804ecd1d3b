// Shared helpers for the browser end-to-end test and the latency benchmark.
import { mkdirSync, rmSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { chromium } from 'playwright-core';

export function env(name, fallback) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    if (fallback === undefined) throw new Error(`missing environment variable ${name}`);
    return fallback;
  }
  return v;
}

const t0 = Date.now();
export const elapsed = () => ((Date.now() - t0) / 1000).toFixed(1).padStart(6) + 's';
export const log = (...a) => console.log(`[${elapsed()}]`, ...a);

export function artifactsDir() {
  const dir = env('RILL_ARTIFACTS', join(process.cwd(), 'artifacts'));
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Headless Chromium with the fake camera/microphone (PITFALLS.md flags). */
export async function launch() {
  const userDataDir = mkdtempSync(join(tmpdir(), 'rill-e2e-'));
  const browser = await chromium.launch({
    executablePath: env('CHROMIUM', '/usr/bin/chromium'),
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      '--autoplay-policy=no-user-gesture-required',
      '--allow-loopback-in-peer-connection',
      '--mute-audio',
      // Background pages must keep encoding and playing.
      '--disable-background-timer-throttling',
      '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
    ],
  });
  const close = async () => {
    await browser.close().catch(() => {});
    rmSync(userDataDir, { recursive: true, force: true });
  };
  return { browser, close };
}

/** Logs a page's console errors, failed requests and page errors with a label (errors also go to `errors`). */
export function watchPage(page, label, errors) {
  page.on('console', (m) => {
    if (m.type() === 'error') {
      const line = `[${label}] console.error: ${m.text()}`;
      errors.push(line);
      log(line);
    }
  });
  page.on('response', (r) => {
    if (r.status() >= 400) log(`[${label}] HTTP ${r.status()} ${r.request().method()} ${r.url()}`);
  });
  page.on('pageerror', (e) => {
    const line = `[${label}] pageerror: ${e.message}`;
    errors.push(line);
    log(line);
  });
  return page;
}

/** A page that logs its console errors and failed requests with a label. */
export async function newPage(browser, label, base, errors) {
  const ctx = await browser.newContext({
    viewport: { width: 1280, height: 800 },
    permissions: ['camera', 'microphone'],
  });
  await ctx.grantPermissions(['camera', 'microphone'], { origin: base });
  const page = watchPage(await ctx.newPage(), label, errors);
  return { ctx, page };
}

/**
 * Another tab of the same browser context (same user: the token is in localStorage), e.g.
 * to open a page without leaving the broadcaster page, whose WHIP session ends on unmount.
 */
export async function openTab(ctx, label, errors) {
  return watchPage(await ctx.newPage(), label, errors);
}

export function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise.finally(() => clearTimeout(t)),
    new Promise((_, rej) => {
      t = setTimeout(() => rej(new Error(`overall timeout after ${ms / 1000} s (${what})`)), ms);
    }),
  ]);
}

/** Owner: sign in with the token in the fragment (if given), create a stream through the UI, go live over WHIP. */
export async function createAndGoLive(page, base, ownerToken, { title, quality = '480p', shot } = {}) {
  // Without a token the page is already signed in (e.g. through the OpenID provider).
  await page.goto(ownerToken ? `${base}/#token=${ownerToken}` : `${base}/`);
  await page.getByTestId('signed-in-as').waitFor({ timeout: 15_000 });
  const hash = await page.evaluate(() => location.hash);
  if (hash.includes('token=')) throw new Error('the token was not removed from the address bar');
  await page.getByTestId('new-stream-title').fill(title);
  await page.getByTestId('new-stream-description').fill('created by the browser end-to-end test');
  await page.getByTestId('new-stream-create').click();
  await page.waitForURL(/\/broadcast\/[^/]+$/, { timeout: 15_000 });
  const id = decodeURIComponent(new URL(page.url()).pathname.split('/').pop());
  log(`created stream ${id}`);
  await page.getByTestId('broadcast-page').waitFor();
  // Preview running (fake camera).
  await page.waitForFunction(() => {
    const v = document.querySelector('[data-testid="preview-video"]');
    return v && v.srcObject && v.readyState >= 2;
  }, null, { timeout: 15_000 });
  await page.getByTestId('quality-preset').selectOption(quality);
  await shot?.('01-broadcaster-preview');
  let ffmpeg = null;
  if (process.env.E2E_PUBLISHER === 'rtmp') {
    // Development fallback only: publish with ffmpeg over RTMP instead of the page's WHIP client.
    const key = await page.evaluate((sid) => JSON.parse(sessionStorage.getItem('rill.streamKey.' + sid)).streamKey, id);
    const rtmp = `${env('RILL_RTMP_URL', 'rtmp://127.0.0.1:1935/live')}/${key}`;
    ffmpeg = spawn('ffmpeg', ['-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=854x480:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=440',
      '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-b:v', '800k', '-g', '30', '-c:a', 'aac', '-f', 'flv', rtmp], { stdio: 'inherit' });
    log('publishing over RTMP with ffmpeg (E2E_PUBLISHER=rtmp)');
  } else {
    await page.getByTestId('go-live').click();
    const state = await Promise.race([
      page.locator('[data-testid="publisher-state"][data-state="publishing"]').waitFor({ timeout: 20_000 }).then(() => 'publishing'),
      page.locator('[data-testid="publisher-state"][data-state="failed"]').waitFor({ timeout: 20_000 }).then(() => 'failed'),
    ]).catch(async () => `still ${await page.getByTestId('publisher-state').getAttribute('data-state')} after 20 s`);
    if (state !== 'publishing') {
      const err = await page.getByTestId('action-error').textContent({ timeout: 500 }).catch(() => '');
      throw new Error(`WHIP publishing ${state}${err ? `: ${err}` : ''}`);
    }
    log('WHIP session connected');
  }
  const live = page.locator('[data-testid="stream-status"][data-status="live"]');
  const ended = page.locator('[data-testid="stream-status"][data-status="ended"]');
  const first = await Promise.race([
    live.waitFor({ timeout: 45_000 }).then(() => 'live'),
    ended.waitFor({ timeout: 45_000 }).then(() => 'ended'),
  ]);
  if (first === 'ended') {
    throw new Error('the ingest node ended the stream before it went live (media reached the node but no HLS was produced; see the ingest log)');
  }
  log('stream is live');
  page.__ffmpeg = ffmpeg;
  return id;
}

/** Viewer: open /watch/:id and wait until hls.js plays (currentTime advances, a level is loaded). */
export async function watchAndPlay(page, base, id, token) {
  await page.goto(`${base}/watch/${encodeURIComponent(id)}${token ? `#token=${token}` : ''}`);
  await page.getByTestId('watch-page').waitFor({ timeout: 15_000 });
  await page.waitForFunction(() => {
    const p = window.__rillPlayer;
    return p && p.hls && p.hls.levels.length > 0 && p.video.currentTime > 0;
  }, null, { timeout: 40_000, polling: 250 });
  const first = await page.evaluate(() => window.__rillPlayer.video.currentTime);
  await page.waitForFunction((t) => window.__rillPlayer.video.currentTime > t + 1.5, first, { timeout: 20_000, polling: 250 });
  return page.evaluate(() => {
    const p = window.__rillPlayer;
    const s = p.stats();
    return { currentTime: s.currentTime, levels: s.levels.map((l) => l.label), currentLevel: s.currentLevel, latencyMs: s.latencyMs };
  });
}

/**
 * Named steps with screenshots of every page on failure: `shot(name)` photographs each page
 * in `pages` (label -> page) into `dir`; `step(name, f)` logs, runs `f` and, when it throws,
 * takes `fail-<name>` shots and rethrows with the step's name.
 */
export function stepper(pages, dir) {
  const shot = async (name) => {
    for (const [label, p] of Object.entries(pages)) await p.screenshot({ path: join(dir, `${name}-${label}.png`) }).catch(() => {});
  };
  const step = async (name, f) => {
    log(`▶ ${name}`);
    try {
      const r = await f();
      log(`✔ ${name}`);
      return r;
    } catch (e) {
      await shot(`fail-${name.replace(/\W+/g, '-')}`);
      throw new Error(`step "${name}" failed: ${e.message}`);
    }
  };
  return { shot, step };
}

/** Runs an e2e script's `main` within `ms`; exit 0 with PASS, 1 with FAIL and the reason. */
export function runScript(main, ms, what) {
  withTimeout(main(), ms, what)
    .then(() => {
      log('PASS');
      process.exit(0);
    })
    .catch((e) => {
      log(`FAIL: ${e.message}`);
      process.exit(1);
    });
}

/** Logs the console errors a run captured. */
export function reportErrors(errors) {
  if (!errors.length) return;
  log(`${errors.length} console error(s) captured:`);
  for (const e of errors) log('  ' + e);
}

/** The number a `data-testid="metric-<name>"` tile carries (NaN when not measured). */
export async function metricValue(page, name) {
  const v = await page.getByTestId(`metric-${name}`).first().getAttribute('data-value');
  return v === null || v === '' ? NaN : Number(v);
}

/**
 * The analytics page of stream `id` in `page` (signed in as its owner or a moderator):
 * waits until every `min` metric reaches its value (the page refreshes every 5 s while the
 * stream is live), until the three charts have a canvas, then downloads the per-minute CSV
 * with the page's button. Answers the metrics, the CSV's file name and its first line.
 */
export async function checkAnalytics(page, base, id, { min = {}, timeoutMs = 20_000 } = {}) {
  await page.goto(`${base}/analytics/${encodeURIComponent(id)}`);
  await page.getByTestId('analytics-page').waitFor({ timeout: 15_000 });
  await page.getByTestId('analytics-summary').waitFor({ timeout: 15_000 }).catch(async (e) => {
    const err = await page.getByTestId('analytics-error').textContent({ timeout: 500 }).catch(() => '');
    throw new Error(err ? `the analytics page shows: ${err}` : e.message);
  });
  try {
    await page.waitForFunction(
      (want) =>
        Object.entries(want).every(([name, atLeast]) => {
          const el = document.querySelector(`[data-testid="metric-${name}"]`);
          const v = el?.getAttribute('data-value');
          return v != null && v !== '' && Number(v) >= atLeast;
        }),
      min,
      { timeout: timeoutMs, polling: 250 },
    );
  } catch {
    const seen = {};
    for (const name of Object.keys(min)) seen[name] = await metricValue(page, name).catch(() => NaN);
    throw new Error(`analytics numbers after ${timeoutMs / 1000} s: ${JSON.stringify(seen)}, expected at least ${JSON.stringify(min)}`);
  }
  for (const chart of ['chart-viewers', 'chart-qoe', 'chart-ingest']) {
    await page.locator(`[data-testid="${chart}"] canvas`).first().waitFor({ state: 'attached', timeout: 5_000 }).catch(() => {
      throw new Error(`${chart} has no canvas`);
    });
  }
  const values = {};
  for (const name of Object.keys(min)) values[name] = await metricValue(page, name);
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: 15_000 }),
    page.getByTestId('csv-minutes').click(),
  ]);
  const failure = await download.failure();
  if (failure) throw new Error(`the CSV download failed: ${failure}`);
  const file = await download.path();
  const text = readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
  const firstLine = text.split(/\r?\n/)[0];
  if (!firstLine.startsWith('minute,viewers_max')) throw new Error(`the CSV starts with ${JSON.stringify(text.slice(0, 80))}`);
  if (!text.includes('\r\n')) throw new Error('the CSV lines do not end with CRLF');
  return { values, filename: download.suggestedFilename(), firstLine, lines: text.split('\r\n').filter(Boolean).length };
}
