#!/usr/bin/env node
// "Live now" in the browser: a follower of a channel whose stream went live sees the unread
// badge in the header, opens the list, follows the link to the watch page, and the
// notification is read afterwards (the badge is gone after a reload).
// Env: RILL_URL, RILL_STREAM_ID (live, in a channel RILL_FOLLOWER_TOKEN's user follows),
// RILL_STREAM_TITLE, RILL_FOLLOWER_TOKEN, RILL_ARTIFACTS, CHROMIUM. Exit 0 = pass.
import { artifactsDir, env, launch, log, newPage, reportErrors, runScript, stepper } from './lib.mjs';

const OVERALL_MS = Number(process.env.E2E_TIMEOUT_MS || 90_000);

async function main() {
  const base = env('RILL_URL').replace(/\/$/, '');
  const id = env('RILL_STREAM_ID');
  const title = env('RILL_STREAM_TITLE');
  const token = env('RILL_FOLLOWER_TOKEN');
  const dir = artifactsDir();
  const errors = [];
  const { browser, close } = await launch();
  const pages = {};
  const { shot, step } = stepper(pages, dir);
  try {
    const follower = await newPage(browser, 'follower', base, errors);
    pages.follower = follower.page;
    const page = follower.page;
    await step('the header shows one unread notification', async () => {
      await page.goto(`${base}/#token=${token}`);
      const badge = page.getByTestId('notifications-badge');
      await badge.waitFor({ timeout: 15_000 });
      const text = (await badge.innerText()).trim();
      if (text !== '1') throw new Error(`badge says ${text}, not 1`);
    });
    await shot('01-badge');
    // The watch page of a stream with no media yet may log player errors: not this test's.
    let beforeWatch = 0;
    await step('the list links to the live stream', async () => {
      await page.getByTestId('notifications-button').click();
      const link = page.getByTestId('notification-link').first();
      await link.waitFor({ timeout: 5_000 });
      const text = await link.innerText();
      if (!text.includes('Live now') || !text.includes(title)) throw new Error(`the list says "${text}"`);
      await shot('02-list');
      beforeWatch = errors.length;
      await link.click();
      await page.waitForURL(`${base}/watch/${encodeURIComponent(id)}`, { timeout: 10_000 });
      await page.getByTestId('watch-page').waitFor({ timeout: 10_000 });
    });
    await shot('03-watch');
    await step('followed, it is read: no badge after a reload', async () => {
      await page.waitForTimeout(500);
      await page.reload();
      await page.getByTestId('notifications-button').waitFor({ timeout: 10_000 });
      await page.waitForTimeout(1_000);
      if (await page.getByTestId('notifications-badge').count()) throw new Error('still unread');
      const unread = await page.evaluate(async ([b, t]) => {
        const r = await fetch(`${b}/api/me/notifications?unread=true`, { headers: { Authorization: `Bearer ${t}` } });
        return (await r.json()).items.length;
      }, [base, token]);
      if (unread !== 0) throw new Error(`${unread} unread left`);
    });
    await shot('04-read');
    const ours = errors.slice(0, beforeWatch);
    if (ours.length) throw new Error(`console errors: ${ours.join(' | ')}`);
    log('notifications: badge, list, link and read state all seen');
    console.log(`created stream ${id}`);
  } finally {
    reportErrors(errors);
    await close();
  }
}

runScript(main, OVERALL_MS, 'notifications');
