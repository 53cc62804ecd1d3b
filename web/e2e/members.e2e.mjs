#!/usr/bin/env node
// Members-only playback in a real browser: a channel member plays a members-only stream with
// hls.js, every media request carrying the signed grant from GET /api/streams/{id}/hls (the
// gateway's /hls checks it as CloudFront would); an outsider's watch page gets no stream and
// the same media without a grant is refused.
// Env: RILL_URL, RILL_STREAM_ID (live, members-only), RILL_MEMBER_TOKEN, RILL_VIEWER_TOKEN
// (an outsider), RILL_ARTIFACTS, CHROMIUM. Exit 0 = pass.
import { artifactsDir, env, launch, log, newPage, reportErrors, runScript, stepper, watchAndPlay } from './lib.mjs';

const OVERALL_MS = Number(process.env.E2E_TIMEOUT_MS || 120_000);

async function main() {
  const base = env('RILL_URL').replace(/\/$/, '');
  const id = env('RILL_STREAM_ID');
  const memberToken = env('RILL_MEMBER_TOKEN');
  const outsiderToken = env('RILL_VIEWER_TOKEN');
  const dir = artifactsDir();
  const errors = [];
  const { browser, close } = await launch();
  const pages = {};
  const { shot, step } = stepper(pages, dir);
  try {
    const member = await newPage(browser, 'member', base, errors);
    pages.member = member.page;
    const media = [];
    member.page.on('response', (r) => {
      if (r.url().includes('/hls/')) media.push({ url: r.url(), status: r.status() });
    });
    const play = await step('a member plays the members-only stream', () => watchAndPlay(member.page, base, id, memberToken));
    log(`  playing: currentTime=${play.currentTime.toFixed(1)} s, levels=${play.levels.join(',')}`);
    await shot('01-member-playing');
    await step('every media request was signed and served from members/', async () => {
      const segments = media.filter((m) => /\.(m4s|mp4)(\?|$)/.test(m.url));
      if (segments.length < 2) throw new Error(`only ${segments.length} segment requests: ${JSON.stringify(media)}`);
      for (const m of media) {
        if (!m.url.includes(`/hls/members/${id}/`)) throw new Error(`media outside members/: ${m.url}`);
        if (!/[?&]Signature=/.test(m.url)) throw new Error(`unsigned media request: ${m.url}`);
        if (m.status !== 200) throw new Error(`HTTP ${m.status} for ${m.url}`);
      }
      log(`  ${media.length} media requests, ${segments.length} of them segments, all signed and 200`);
    });

    const outsider = await newPage(browser, 'outsider', base, errors);
    pages.outsider = outsider.page;
    // The outsider's page fails to load the stream (404s, a refused socket that it keeps
    // retrying): its console errors are expected; only the member's count.
    await step('an outsider gets no stream and no media', async () => {
      await outsider.page.goto(`${base}/watch/${encodeURIComponent(id)}#token=${outsiderToken}`);
      await outsider.page.getByTestId('watch-page').waitFor({ timeout: 15_000 });
      const error = outsider.page.locator('p.error').first();
      await error.waitFor({ timeout: 15_000 });
      const text = await error.innerText();
      if (!text.includes('not found')) throw new Error(`the outsider sees "${text}", not "stream not found"`);
      const player = await outsider.page.evaluate(() => Boolean(window.__rillPlayer));
      if (player) throw new Error('a player was created for an outsider');
      const status = await outsider.page.evaluate(async (u) => (await fetch(u, { cache: 'no-store' })).status, `${base}/hls/members/${id}/master.m3u8`);
      if (status !== 403) throw new Error(`unsigned master playlist answered ${status}`);
    });
    await shot('02-outsider');
    const memberErrors = errors.filter((e) => e.startsWith('[member]'));
    if (memberErrors.length) throw new Error(`console errors: ${memberErrors.join(' | ')}`);
    console.log(`created stream ${id}`);
  } finally {
    reportErrors(errors);
    await close();
  }
}

runScript(main, OVERALL_MS, 'members-only playback');
