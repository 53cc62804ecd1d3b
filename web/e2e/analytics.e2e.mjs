#!/usr/bin/env node
// Analytics against ground truth, in real browsers: two signed-in viewers watch a live
// stream (published over RTMP by the Rust test); one is throttled through the DevTools
// protocol until its player stalls, then let go. Each chats and reacts a known number of
// times; both leave. The script prints what it observed as one `TRUTH {json}` line (the
// Rust test compares the analytics endpoint's numbers with it) and photographs the
// owner's Analytics dashboard.
// Env: RILL_URL, RILL_STREAM_ID, RILL_OWNER_TOKEN, RILL_STEADY_TOKEN, RILL_THROTTLED_TOKEN,
// RILL_ARTIFACTS, CHROMIUM. Exit 0 = pass.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { artifactsDir, checkAnalytics, env, launch, log, newPage, reportErrors, runScript, stepper, watchAndPlay } from './lib.mjs';

const OVERALL_MS = Number(process.env.E2E_TIMEOUT_MS || 180_000);
// The player reports every 10 s (useStreamViewer's HEARTBEAT_MS): wait a little longer
// after the last event so that a report carries it before the viewer leaves.
const REPORT_WAIT_MS = 12_000;

/**
 * Counts stalls as the browser sees them, from the page's first script on: a `waiting` of
 * a media element after playback started, once per stall (until it plays again). Capture
 * listeners on the document see media events, which do not bubble.
 */
async function countStalls(ctx) {
  await ctx.addInitScript(() => {
    let played = false;
    let stalled = false;
    window.__stalls = 0;
    document.addEventListener('playing', () => { played = true; stalled = false; }, true);
    document.addEventListener('waiting', () => {
      if (played && !stalled) {
        stalled = true;
        window.__stalls += 1;
      }
    }, true);
  });
}

async function chat(page, text) {
  await page.getByTestId('chat-input').fill(text);
  await page.getByTestId('chat-send').click();
  await page.getByTestId('chat-messages').getByText(text).waitFor({ timeout: 15_000 });
}

async function main() {
  const base = env('RILL_URL').replace(/\/$/, '');
  const id = env('RILL_STREAM_ID');
  const dir = artifactsDir();
  const errors = [];
  const { browser, close } = await launch();
  const pages = {};
  const { shot, step } = stepper(pages, dir);
  const truth = { steady: {}, throttled: {}, chat: 0 };
  try {
    const steady = await newPage(browser, 'steady', base, errors);
    const throttled = await newPage(browser, 'throttled', base, errors);
    pages.steady = steady.page;
    pages.throttled = throttled.page;
    await countStalls(steady.ctx);
    await countStalls(throttled.ctx);
    truth.steady.openedAt = Date.now();
    await step('the steady viewer plays', () => watchAndPlay(steady.page, base, id, env('RILL_STEADY_TOKEN')));
    truth.throttled.openedAt = Date.now();
    await step('the throttled viewer plays', () => watchAndPlay(throttled.page, base, id, env('RILL_THROTTLED_TOKEN')));
    await shot('01-playing');

    await step('the throttled viewer stalls, then recovers', async () => {
      const cdp = await throttled.ctx.newCDPSession(throttled.page);
      await cdp.send('Network.enable');
      // 12 kB/s: far below the lowest rung; the live buffer drains within seconds.
      await cdp.send('Network.emulateNetworkConditions', {
        offline: false,
        latency: 300,
        downloadThroughput: 12 * 1024,
        uploadThroughput: 64 * 1024,
      });
      await throttled.page.waitForFunction(() => window.__stalls > 0, null, { timeout: 45_000, polling: 250 });
      // Stay stalled for a while (the Rust test expects at least 1.5 s of rebuffering).
      await throttled.page.waitForTimeout(2_000);
      await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
      const t = await throttled.page.evaluate(() => window.__rillPlayer.video.currentTime);
      await throttled.page.waitForFunction((t0) => window.__rillPlayer.video.currentTime > t0 + 1, t, { timeout: 45_000, polling: 250 });
    });
    await shot('02-recovered');

    await step('both chat and react', async () => {
      await chat(steady.page, `steady one ${Date.now()}`);
      await chat(steady.page, `steady two ${Date.now()}`);
      await chat(throttled.page, `throttled one ${Date.now()}`);
      truth.chat = 3;
      await steady.page.getByTestId('react-0').click();
      await throttled.page.getByTestId('react-1').click();
    });

    await step('the last reports go out, then both leave', async () => {
      await steady.page.waitForTimeout(REPORT_WAIT_MS);
      truth.steady.stalls = await steady.page.evaluate(() => window.__stalls);
      truth.throttled.stalls = await throttled.page.evaluate(() => window.__stalls);
      await steady.page.close();
      truth.steady.closedAt = Date.now();
      await throttled.page.close();
      truth.throttled.closedAt = Date.now();
      delete pages.steady;
      delete pages.throttled;
    });
    for (const v of [truth.steady, truth.throttled]) v.watchMs = v.closedAt - v.openedAt;
    log(`TRUTH ${JSON.stringify(truth)}`);

    const owner = await newPage(browser, 'owner', base, errors);
    pages.owner = owner.page;
    await owner.page.goto(`${base}/#token=${env('RILL_OWNER_TOKEN')}`);
    await step('the owner sees the dashboard with both views and the chat', async () => {
      const seen = await checkAnalytics(owner.page, base, id, { min: { views: 2, chatMessages: 3 }, timeoutMs: 30_000 });
      log(`  dashboard: ${JSON.stringify(seen.values)}, csv ${seen.filename} (${seen.lines} lines)`);
    });
    await owner.page.screenshot({ path: join(dir, '03-dashboard.png'), fullPage: true });
    await step('the dashboard prints as a PDF report', async () => {
      await owner.page.getByTestId('print-pdf').waitFor({ timeout: 5_000 });
      await owner.page.emulateMedia({ media: 'print' });
      const path = join(dir, 'analytics-report.pdf');
      await owner.page.pdf({ path, printBackground: true });
      const head = readFileSync(path).subarray(0, 5).toString();
      if (head !== '%PDF-') throw new Error(`not a PDF: ${JSON.stringify(head)}`);
    });
  } finally {
    reportErrors(errors);
    await close();
  }
}

runScript(main, OVERALL_MS, 'analytics e2e');
