#!/usr/bin/env node
// Glass-to-glass latency benchmark: the broadcaster page goes live over WHIP (fake camera), the
// viewer page plays with hls.js in low-latency mode; once per second we sample
// Date.now() - hls.playingDate (the segment's EXT-X-PROGRAM-DATE-TIME at the playhead) and
// hls.js' own `latency` estimate, after a warm-up. Prints a table and one JSON line.
// Env: RILL_URL, RILL_OWNER_TOKEN, RILL_VIEWER_TOKEN, RILL_ARTIFACTS, CHROMIUM,
//      DURATION_SECONDS (40), WARMUP_SECONDS (10);
//      RTMP_SOURCE=<file> + RILL_RTMP_URL: instead of the browser's WHIP, ffmpeg pushes the
//      file over RTMP (`-re -c copy`, looped) to a stream with the 1080p preset (the OBS case);
//      HLS_STOCK='{"lowLatencyMode":true,"liveSyncDurationCount":2}': play with these hls.js
//      settings instead of the app's tuned ones.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { artifactsDir, createAndGoLive, env, launch, log, newPage, watchAndPlay, withTimeout } from './lib.mjs';

const DURATION = Number(env('DURATION_SECONDS', '40'));
const WARMUP = Number(env('WARMUP_SECONDS', '10'));

const pct = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] : NaN);
const fmt = (ms) => (Number.isFinite(ms) ? (ms / 1000).toFixed(2) + ' s' : '–');

/** Creates a 1080p stream over REST, pushes `file` over RTMP with ffmpeg, waits for `live`. */
async function rtmpLive(base, token, file, keep) {
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const r = await fetch(`${base}/api/streams/create`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ channelId: 'bench', title: 'latency bench (RTMP)', settings: { quality: '1080p' } }),
  });
  if (r.status !== 201) throw new Error(`create: ${r.status} ${await r.text()}`);
  const s = await r.json();
  const url = `${env("RILL_RTMP_URL")}/${s.ingest.streamKey}`;
  keep(spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re', '-stream_loop', '-1', '-i', file, '-c', 'copy', '-f', 'flv', url], { stdio: 'inherit' }));
  log(`publishing ${file} over RTMP`);
  for (let i = 0; i < 120; i++) {
    const g = await (await fetch(`${base}/api/streams/${s.id}`)).json();
    if (g.status === 'live') return s.id;
    await new Promise((res) => setTimeout(res, 500));
  }
  throw new Error('the RTMP stream did not go live in 60 s');
}

async function main() {
  const base = env('RILL_URL').replace(/\/$/, '');
  const dir = artifactsDir();
  const errors = [];
  const { browser, close } = await launch();
  let owner;
  try {
    owner = await newPage(browser, 'owner', base, errors);
    const id = process.env.RTMP_SOURCE
      ? await rtmpLive(base, env('RILL_OWNER_TOKEN'), process.env.RTMP_SOURCE, (p) => (owner.page.__ffmpeg = p))
      : await createAndGoLive(owner.page, base, env('RILL_OWNER_TOKEN'), { title: `latency bench ${new Date().toISOString()}` });
    const viewer = await newPage(browser, 'viewer', base, errors);
    if (process.env.HLS_STOCK) {
      await viewer.page.addInitScript((c) => { window.__rillHlsStock = JSON.parse(c); }, process.env.HLS_STOCK);
      log(`stock hls.js settings: ${process.env.HLS_STOCK}`);
    }
    if (process.env.HLS_CONFIG) {
      // e.g. HLS_CONFIG='{"liveSyncDuration":0.8}' to try other settings without a rebuild.
      await viewer.page.addInitScript((c) => { window.__rillHlsConfig = JSON.parse(c); }, process.env.HLS_CONFIG);
      log(`hls.js overrides: ${process.env.HLS_CONFIG}`);
    }
    const play = await watchAndPlay(viewer.page, base, id, env('RILL_VIEWER_TOKEN', ''));
    log(`playing (levels ${play.levels.join(',')}); warm-up ${WARMUP} s`);
    await viewer.page.waitForTimeout(WARMUP * 1000);
    const base0 = await viewer.page.evaluate(() => ({ stalls: window.__rillPlayer.stats().stalls, waiting: window.__rillPlayer.stats().waitingEvents }));
    const samples = [];
    log(`sampling for ${DURATION} s`);
    for (let i = 0; i < DURATION; i++) {
      const s = await viewer.page.evaluate(() => {
        const p = window.__rillPlayer;
        const st = p.stats();
        return { g2g: p.latencyMs(), hls: st.hlsLatency, buffer: st.bufferLength, level: st.currentLevel, rate: p.video.playbackRate, stalls: st.stalls, waiting: st.waitingEvents };
      });
      samples.push(s);
      await viewer.page.waitForTimeout(1000);
    }
    await viewer.page.screenshot({ path: join(dir, 'latency-viewer.png') }).catch(() => {});
    const last = samples[samples.length - 1];
    const g2g = samples.map((s) => s.g2g).filter((v) => typeof v === 'number').sort((a, b) => a - b);
    const hls = samples.map((s) => (typeof s.hls === 'number' ? s.hls * 1000 : null)).filter((v) => v !== null).sort((a, b) => a - b);
    const stalls = last.stalls - base0.stalls;
    const waiting = last.waiting - base0.waiting;
    const row = (name, arr) => `${name.padEnd(34)} ${fmt(pct(arr, 50)).padStart(8)} ${fmt(pct(arr, 90)).padStart(8)} ${fmt(arr[arr.length - 1]).padStart(8)}`;
    console.log('');
    console.log(`latency over ${samples.length} samples (1/s) after ${WARMUP} s warm-up`);
    console.log(`${''.padEnd(34)} ${'p50'.padStart(8)} ${'p90'.padStart(8)} ${'max'.padStart(8)}`);
    console.log(row('glass-to-glass (now - playingDate)', g2g));
    console.log(row('hls.js latency (to live edge)', hls));
    console.log(`stalls: ${stalls} BUFFER_STALLED_ERROR, ${waiting} waiting events; mean buffer ${(samples.reduce((a, s) => a + s.buffer, 0) / samples.length).toFixed(2)} s`);
    console.log('');
    console.log(
      JSON.stringify({
        p50: Math.round(pct(g2g, 50)),
        p90: Math.round(pct(g2g, 90)),
        max: Math.round(g2g[g2g.length - 1]),
        stalls,
        waiting,
        hlsLatencyP50: Math.round(pct(hls, 50)),
        samples: g2g.length,
        unit: 'ms',
      }),
    );
    if (process.env.RTMP_SOURCE) {
      await fetch(`${base}/api/streams/${id}/end`, { method: 'POST', headers: { authorization: `Bearer ${env('RILL_OWNER_TOKEN')}` } });
    }
    await owner.page.getByTestId('end-stream').click().catch(() => {});
    await owner.page.waitForTimeout(1000);
  } finally {
    owner?.page.__ffmpeg?.kill('SIGINT');
    for (const e of errors) log('  ' + e);
    await close();
  }
}

withTimeout(main(), (DURATION + WARMUP + 120) * 1000, 'latency benchmark')
  .then(() => process.exit(0))
  .catch((e) => {
    log(`FAIL: ${e.message}`);
    process.exit(1);
  });
