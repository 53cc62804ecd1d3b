#!/usr/bin/env node
// Browser end-to-end test: owner creates a stream in the UI and goes live over WHIP (fake camera),
// a viewer plays it with hls.js, chat both ways, a reaction, viewer count, the owner's analytics
// page (numbers, charts, CSV download) in a second tab, End Stream, then
// channel roles on the channel page (grant, leave, follow) and the channel's analytics page.
// Env: RILL_URL, RILL_OWNER_TOKEN, RILL_VIEWER_TOKEN, RILL_ARTIFACTS, CHROMIUM. Exit 0 = pass.
import { join } from 'node:path';
import { artifactsDir, checkAnalytics, createAndGoLive, env, launch, log, newPage, openTab, reportErrors, runScript, stepper, watchAndPlay } from './lib.mjs';

const OVERALL_MS = Number(process.env.E2E_TIMEOUT_MS || 180_000);

async function main() {
  const base = env('RILL_URL').replace(/\/$/, '');
  const ownerToken = env('RILL_OWNER_TOKEN');
  const viewerToken = env('RILL_VIEWER_TOKEN');
  const dir = artifactsDir();
  const errors = [];
  const { browser, close } = await launch();
  const pages = {};
  const { shot, step } = stepper(pages, dir);
  try {
    const owner = await newPage(browser, 'owner', base, errors);
    pages.owner = owner.page;
    const id = await step('owner creates a stream and goes live over WHIP', () =>
      createAndGoLive(owner.page, base, ownerToken, {
        title: `e2e ${new Date().toISOString()}`,
        shot: (n) => owner.page.screenshot({ path: join(dir, `${n}.png`) }),
      }),
    );
    await shot('02-live');

    const viewer = await newPage(browser, 'viewer', base, errors);
    pages.viewer = viewer.page;
    const play = await step('viewer plays the stream with hls.js', () => watchAndPlay(viewer.page, base, id, viewerToken));
    log(`  playing: currentTime=${play.currentTime.toFixed(1)} s, levels=${play.levels.join(',')}, level=${play.currentLevel}, latency=${play.latencyMs} ms`);
    await shot('03-playing');

    await step('viewer chat message appears on the broadcaster page', async () => {
      const text = `hello from the viewer ${Date.now()}`;
      await viewer.page.getByTestId('chat-input').fill(text);
      await viewer.page.getByTestId('chat-send').click();
      await owner.page.getByTestId('chat-messages').getByText(text).waitFor({ timeout: 15_000 });
    });
    await step('broadcaster chat message appears on the viewer page', async () => {
      const text = `hello from the broadcaster ${Date.now()}`;
      await owner.page.getByTestId('chat-input').fill(text);
      await owner.page.getByTestId('chat-send').click();
      await viewer.page.getByTestId('chat-messages').getByText(text).waitFor({ timeout: 15_000 });
    });
    await shot('04-chat');

    await step('a reaction shows in the overlay on both pages', async () => {
      await viewer.page.getByTestId('react-1').click();
      const seen = (p) =>
        p.waitForFunction(() => Number(document.querySelector('[data-testid="reaction-overlay"]')?.dataset.total || 0) > 0, null, {
          timeout: 15_000,
          polling: 100,
        });
      await Promise.all([seen(viewer.page), seen(owner.page)]);
      await Promise.all([
        viewer.page.getByTestId('reaction-float').first().waitFor({ state: 'attached', timeout: 2000 }).catch(() => {}),
      ]);
      await shot('05-reaction');
    });

    await step('broadcaster sees 1 viewer (own socket not counted)', async () => {
      try {
        await owner.page.locator('[data-testid="viewer-count"][data-count="1"]').waitFor({ timeout: 20_000 });
      } catch {
        const shown = await owner.page.getByTestId('viewer-count').getAttribute('data-count');
        throw new Error(`viewer count shows ${shown}, expected 1`);
      }
    });
    await shot('06-viewer-count');

    // Analytics, in a second tab of the owner's browser: leaving the broadcaster page would
    // end its WHIP session (the publisher is released on unmount), and the steps below need
    // it live. Two chat messages and one reaction were sent above; the minute buckets are
    // folded from the table's stream within a couple of seconds.
    await step('owner sees views, chat and reactions on the analytics page', async () => {
      await owner.page.getByTestId('live-analytics').waitFor({ timeout: 5_000 });
      const href = await owner.page.getByTestId('analytics-link').getAttribute('href');
      if (href !== `/analytics/${encodeURIComponent(id)}`) throw new Error(`the broadcaster page links to ${href}`);
      const tab = await openTab(owner.ctx, 'analytics', errors);
      pages.analytics = tab;
      const r = await checkAnalytics(tab, base, id, { min: { views: 1, chatMessages: 2, reactions: 1 }, timeoutMs: 20_000 });
      log(`  analytics: ${JSON.stringify(r.values)}; ${r.filename}: ${r.lines} lines, "${r.firstLine.slice(0, 40)}…"`);
      await tab.screenshot({ path: join(dir, '06b-analytics.png'), fullPage: true });
      delete pages.analytics;
      await tab.close();
      await owner.page.bringToFront();
      const state = await owner.page.getByTestId('publisher-state').getAttribute('data-state');
      log(`  broadcaster page after the analytics tab: publisher ${state}`);
    });

    await step('End Stream shows the ended state on both pages', async () => {
      await owner.page.getByTestId('end-stream').click();
      await Promise.all([
        owner.page.getByTestId('ended-banner').waitFor({ timeout: 20_000 }),
        viewer.page.getByTestId('ended-banner').waitFor({ timeout: 20_000 }),
      ]);
      await owner.page.locator('[data-testid="stream-status"][data-status="ended"]').waitFor({ timeout: 5_000 });
    });
    await shot('07-ended');

    // Channel roles: the owner grants the viewer `moderator` on the channel page; the viewer
    // sees the role and the member list, leaves, and follows again by themselves.
    const channel = await owner.page.evaluate(() => localStorage.getItem('rill.channel') || 'channel-uuid');
    const viewerSub = JSON.parse(Buffer.from(viewerToken.split('.')[1], 'base64url').toString()).sub;
    await step('the channel owner grants the viewer a role on the channel page', async () => {
      await owner.page.goto(`${base}/channel/${encodeURIComponent(channel)}`);
      await owner.page.locator('[data-testid="your-role"]', { hasText: 'owner' }).waitFor({ timeout: 15_000 });
      await owner.page.getByTestId('grant-user').fill(viewerSub);
      await owner.page.getByTestId('grant-role').selectOption('moderator');
      await owner.page.getByTestId('grant').click();
      await owner.page.locator(`[data-testid="member"][data-user-id="${viewerSub}"]`, { hasText: 'moderator' }).waitFor({ timeout: 15_000 });
    });
    // The channel's analytics: the stream above counts (it was live within the last 30 days
    // and had a viewer); its row links to the stream's own analytics page.
    await step("the channel owner sees the channel's analytics", async () => {
      await owner.page.getByTestId('channel-analytics-link').click();
      await owner.page.getByTestId('channel-analytics-page').waitFor({ timeout: 15_000 });
      const want = { streams: 1, views: 1 };
      const ready = () =>
        owner.page.evaluate(
          ({ want, id }) =>
            Object.entries(want).every(([name, atLeast]) => {
              const v = document.querySelector(`[data-testid="channel-metric-${name}"]`)?.getAttribute('data-value');
              return v != null && v !== '' && Number(v) >= atLeast;
            }) && !!document.querySelector(`[data-testid="channel-stream"][data-stream-id="${CSS.escape(id)}"]`),
          { want, id },
        );
      // 20 s in all; the page refreshes by itself only while a stream is live, so ask again
      // every 5 s.
      const deadline = Date.now() + 20_000;
      let asked = Date.now();
      while (!(await ready())) {
        if (Date.now() > deadline) {
          const err = await owner.page.getByTestId('channel-analytics-error').textContent({ timeout: 500 }).catch(() => '');
          const seen = {};
          for (const name of Object.keys(want)) {
            seen[name] = await owner.page.getByTestId(`channel-metric-${name}`).getAttribute('data-value', { timeout: 500 }).catch(() => null);
          }
          const rows = await owner.page.locator('[data-testid="channel-stream"]').evaluateAll((els) => els.map((e) => e.dataset.streamId));
          throw new Error(err ? `the channel analytics page shows: ${err}` : `after 20 s: ${JSON.stringify(seen)}, rows ${JSON.stringify(rows)}, expected ${JSON.stringify(want)} and a row for ${id}`);
        }
        if (Date.now() - asked > 5_000) {
          asked = Date.now();
          await owner.page.getByTestId('channel-analytics-refresh').click({ timeout: 2_000 }).catch(() => {});
        }
        await owner.page.waitForTimeout(250);
      }
      const row = owner.page.locator(`[data-testid="channel-stream"][data-stream-id="${id}"]`);
      const href = await row.locator('a').first().getAttribute('href');
      if (href !== `/analytics/${encodeURIComponent(id)}`) throw new Error(`the stream's row links to ${href}`);
      await owner.page.locator('[data-testid="chart-channel"] canvas').first().waitFor({ state: 'attached', timeout: 5_000 }).catch(() => {
        throw new Error('chart-channel has no canvas');
      });
      const values = {};
      for (const name of ['streams', 'views', 'uniqueViewers', 'peakViewers', 'chatMessages', 'reactions']) {
        values[name] = await owner.page.getByTestId(`channel-metric-${name}`).getAttribute('data-value');
      }
      log(`  channel analytics: ${JSON.stringify(values)}`);
      await shot('08b-channel-analytics');
      await owner.page.goto(`${base}/channel/${encodeURIComponent(channel)}`);
      await owner.page.locator('[data-testid="your-role"]', { hasText: 'owner' }).waitFor({ timeout: 15_000 });
    });
    await step('the viewer sees their role, leaves and follows', async () => {
      await viewer.page.goto(`${base}/channel/${encodeURIComponent(channel)}`);
      await viewer.page.locator('[data-testid="your-role"]', { hasText: 'moderator' }).waitFor({ timeout: 15_000 });
      await viewer.page.getByTestId('channel-members').waitFor({ timeout: 15_000 });
      await viewer.page.getByTestId('leave').click();
      await viewer.page.locator('[data-testid="your-role"]', { hasText: 'none' }).waitFor({ timeout: 15_000 });
      await viewer.page.getByTestId('follow').click();
      await viewer.page.locator('[data-testid="your-role"]', { hasText: 'follower' }).waitFor({ timeout: 15_000 });
    });
    await shot('08-channel');
  } finally {
    pages.owner?.__ffmpeg?.kill('SIGINT');
    reportErrors(errors);
    await close();
  }
}

runScript(main, OVERALL_MS, 'browser e2e');
