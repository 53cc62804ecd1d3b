#!/usr/bin/env node
// Notifications in the browser: a follower of a channel sees the unread badge in the header
// for a stream that went live and another's reminder, opens the list, follows the "live
// now" link to the watch page, and that notification is read afterwards (one left unread
// after a reload). The owner schedules a stream with reminders from the Schedule page.
// Env: RILL_URL, RILL_STREAM_ID (live, in RILL_CHANNEL, which RILL_FOLLOWER_TOKEN's user
// follows), RILL_STREAM_TITLE, RILL_REMINDER_TITLE (a scheduled stream whose reminder was
// sent), RILL_FOLLOWER_TOKEN, RILL_OWNER_TOKEN, RILL_CHANNEL, RILL_ARTIFACTS, CHROMIUM.
// Exit 0 = pass.
import { artifactsDir, env, launch, log, newPage, reportErrors, runScript, stepper } from './lib.mjs';

const OVERALL_MS = Number(process.env.E2E_TIMEOUT_MS || 90_000);

async function main() {
  const base = env('RILL_URL').replace(/\/$/, '');
  const id = env('RILL_STREAM_ID');
  const title = env('RILL_STREAM_TITLE');
  const token = env('RILL_FOLLOWER_TOKEN');
  const reminderTitle = env('RILL_REMINDER_TITLE');
  const ownerToken = env('RILL_OWNER_TOKEN');
  const channel = env('RILL_CHANNEL');
  const dir = artifactsDir();
  const errors = [];
  const { browser, close } = await launch();
  const pages = {};
  const { shot, step } = stepper(pages, dir);
  try {
    const follower = await newPage(browser, 'follower', base, errors);
    pages.follower = follower.page;
    const page = follower.page;
    await step('the header shows two unread notifications', async () => {
      await page.goto(`${base}/#token=${token}`);
      const badge = page.getByTestId('notifications-badge');
      await badge.waitFor({ timeout: 15_000 });
      const text = (await badge.innerText()).trim();
      if (text !== '2') throw new Error(`badge says ${text}, not 2`);
    });
    await shot('01-badge');
    // The watch page of a stream with no media yet may log player errors: not this test's.
    let beforeWatch = 0;
    await step('the list has the reminder and links to the live stream', async () => {
      await page.getByTestId('notifications-button').click();
      const links = page.getByTestId('notification-link');
      await links.first().waitFor({ timeout: 5_000 });
      const texts = await links.allInnerTexts();
      if (!texts.some((t) => t.includes('In 15 min') && t.includes(reminderTitle))) {
        throw new Error(`no reminder in the list: ${JSON.stringify(texts)}`);
      }
      const link = links.filter({ hasText: 'Live now' });
      const text = await link.innerText();
      if (!text.includes(title)) throw new Error(`the list says "${text}"`);
      await shot('02-list');
      beforeWatch = errors.length;
      await link.click();
      await page.waitForURL(`${base}/watch/${encodeURIComponent(id)}`, { timeout: 10_000 });
      await page.getByTestId('watch-page').waitFor({ timeout: 10_000 });
    });
    await shot('03-watch');
    await step('followed, it is read: one left after a reload', async () => {
      await page.waitForTimeout(500);
      await page.reload();
      const badge = page.getByTestId('notifications-badge');
      await badge.waitFor({ timeout: 10_000 });
      await page.waitForTimeout(1_000);
      const text = (await badge.innerText()).trim();
      if (text !== '1') throw new Error(`badge says ${text}, not 1`);
      const unread = await page.evaluate(async ([b, t]) => {
        const r = await fetch(`${b}/api/me/notifications?unread=true`, { headers: { Authorization: `Bearer ${t}` } });
        return (await r.json()).items.map((n) => n.type);
      }, [base, token]);
      if (JSON.stringify(unread) !== '["stream:scheduled-reminder"]') throw new Error(`unread left: ${unread}`);
    });
    await shot('04-read');
    const owner = await newPage(browser, 'owner', base, errors);
    pages.owner = owner.page;
    await step('the owner schedules a stream with reminders 1 day and 15 min before', async () => {
      const p = owner.page;
      await p.goto(`${base}/schedule#token=${ownerToken}`);
      await p.getByTestId('schedule-channel').fill(channel);
      await p.getByTestId('schedule-title').fill('Weekly review');
      await p.getByTestId('remind-1440').check();
      const fifteen = p.getByTestId('remind-15');
      if (!(await fifteen.isChecked())) throw new Error('15 min is not the default');
      await p.getByTestId('schedule-create').click();
      await p.getByTestId('scheduled-item').filter({ hasText: 'Weekly review' }).waitFor({ timeout: 10_000 });
      const reminders = await p.evaluate(async ([b, t, c]) => {
        const r = await fetch(`${b}/api/streams/scheduled?channelId=${c}`, { headers: { Authorization: `Bearer ${t}` } });
        const s = (await r.json()).items.find((x) => x.title === 'Weekly review');
        return s?.settings?.notifications?.reminders;
      }, [base, ownerToken, channel]);
      if (JSON.stringify(reminders) !== '[1440,15]') throw new Error(`stored reminders: ${JSON.stringify(reminders)}`);
    });
    await shot('05-scheduled');
    await step('a new reminder reaches the open page through its socket, no reload', async () => {
      // The list is polled every 30 s; this must arrive in well under that.
      const started = Date.now();
      const created = await owner.page.evaluate(async ([b, t, c]) => {
        const at = new Date(Date.now() + 15 * 60_000 + 3_000).toISOString();
        const r = await fetch(`${b}/api/streams/create`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${t}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ channelId: c, title: 'Pushed reminder', scheduledAt: at, settings: { notifications: { reminders: [15] } } }),
        });
        return r.status;
      }, [base, ownerToken, channel]);
      if (created !== 201) throw new Error(`create answered ${created}`);
      const badge = page.getByTestId('notifications-badge');
      await page.waitForFunction(() => document.querySelector('[data-testid="notifications-badge"]')?.textContent?.trim() === '2', null, { timeout: 15_000 });
      log(`pushed reminder shown ${Date.now() - started} ms after the stream was scheduled (due 3 s after)`);
      if ((await badge.innerText()).trim() !== '2') throw new Error('badge did not reach 2');
    });
    await shot('06-pushed');
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
