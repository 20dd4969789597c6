// Benchmark (not a test): "card placed → summary rendered" in the browser, over RUNS runs.
// The clock starts when the demo panel places the card on the terminal's emulated reader and
// stops when the alerts are on screen; the crew's two taps are made as soon as each button is
// shown, so the number is the system's latency, not a person's.
//
// Each run is a new incident, so every run makes both taps for a card not yet seen (a card
// whose consent is recorded would re-open with one tap).
//
// Env: LAUNCH (file with the terminal's one-time launch URL), TERMINAL (terminal URL), DESK
// (ems URL the dispatcher uses), RUNS (default 50),
// CARD (deck card id, default doac), CREW (login, default crew10), TEAM (default 中原救急1),
// OUT (JSON file for the result).

import { readFileSync, writeFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const TERMINAL = process.env.TERMINAL ?? 'http://127.0.0.1:18442';
const DESK = process.env.DESK ?? 'http://127.0.0.1:18441';
const RUNS = Number(process.env.RUNS ?? 50);
const WARMUP = 3;
const CARD = process.env.CARD ?? 'doac';
const CREW = process.env.CREW ?? 'crew10';
const TEAM = process.env.TEAM ?? '中原救急1';
const LAUNCH = process.env.LAUNCH;
if (!LAUNCH) throw new Error('LAUNCH must name the file with the terminal\'s launch URL');

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  // The desk is the demo's HTTPS ems; the benchmark measures time, not trust.
  const desk = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
  await desk.goto(`${DESK}/login`);
  await desk.fill('#login', 'dispatcher');
  await desk.fill('#password', 'dispatch-119');
  await Promise.all([desk.waitForURL(`${DESK}/dispatch`), desk.click('button[type=submit]')]);

  const crew = await (await browser.newContext({ viewport: { width: 1180, height: 820 } })).newPage();
  await crew.goto(readFileSync(LAUNCH, 'utf8').trim());
  if (await crew.locator('#sign-in').count()) {
    await crew.fill('#login', CREW);
    await crew.fill('#password', 'crew-2026-demo');
    await crew.click('#sign-in');
  }
  await crew.locator('#link').waitFor({ timeout: 30000 });

  const labels = await desk.locator('#team option').allTextContents();
  const teamLabel = labels.find((l) => l.trim().endsWith(` ${TEAM}`)).trim();
  let id = null;
  // A new incident for the team, with the crew on scene; the previous one is closed first.
  const nextIncident = async () => {
    if (id !== null) {
      await desk.goto(`${DESK}/dispatch`);
      await desk.locator(`tr[data-incident="${id}"] form[action$="/close"] button`).click();
      await crew.locator('#standby').waitFor({ timeout: 30000 });
    }
    await desk.goto(`${DESK}/dispatch`);
    const location = `ベンチマーク ${Date.now()}`;
    await desk.fill('#location', location);
    await desk.selectOption('#team', { label: teamLabel });
    await Promise.all([desk.waitForURL(`${DESK}/dispatch`), desk.click('#create')]);
    const row = desk.locator('tr[data-incident]', { hasText: location });
    await row.waitFor();
    id = await row.getAttribute('data-incident');
    await crew.locator(`#incident[data-incident="${id}"]`).waitFor({ timeout: 30000 });
    await crew.click('#phase-arrival');
    await crew.locator('#phase-arrival[data-state="done"]').waitFor({ timeout: 30000 });
  };

  // The demo panel's buttons, pressed from the tablet's own window (same origin, its key).
  const post = (path) => crew.evaluate((p) => fetch(p, { method: 'POST', redirect: 'manual' }).then(() => null), path);
  const samples = [];
  // Segments: card placed → first button shown (read + push + redraw); tap 1 → tap 2 shown;
  // tap 2 → alerts shown (the consent and the summary through ems and the provider).
  const parts = { read: [], tap1: [], fetch: [] };
  for (let i = 0; i < WARMUP + RUNS; i += 1) {
    await post('/demo/remove');
    await nextIncident();
    await crew.locator('#card-step[data-card="empty"]').waitFor({ timeout: 30000 });
    const t0 = performance.now();
    await post(`/demo/place/${CARD}`);
    await crew.locator('#face-ok').waitFor({ timeout: 30000 });
    const tRead = performance.now();
    await crew.click('#face-ok', { timeout: 30000 });
    await crew.locator('#consent-ok').waitFor({ timeout: 30000 });
    const tTap1 = performance.now();
    await crew.click('#consent-ok', { timeout: 30000 });
    await crew.locator('#alerts').waitFor({ timeout: 30000 });
    const t1 = performance.now();
    if (i >= WARMUP) {
      samples.push(t1 - t0);
      parts.read.push(tRead - t0);
      parts.tap1.push(tTap1 - tRead);
      parts.fetch.push(t1 - tTap1);
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  samples.sort((a, b) => a - b);
  const q = (p) => samples[Math.min(samples.length - 1, Math.ceil(p * samples.length) - 1)];
  const result = {
    runs: samples.length,
    p50_ms: Math.round(q(0.5)),
    p95_ms: Math.round(q(0.95)),
    min_ms: Math.round(samples[0]),
    max_ms: Math.round(samples[samples.length - 1]),
    mean_ms: Math.round(samples.reduce((a, b) => a + b, 0) / samples.length),
    p50_card_to_first_button_ms: Math.round(median(parts.read)),
    p50_tap1_to_tap2_button_ms: Math.round(median(parts.tap1)),
    p50_tap2_to_alerts_ms: Math.round(median(parts.fetch)),
  };
  // Push: from the dispatcher's "create and dispatch" to the incident on the tablet's screen.
  await desk.goto(`${DESK}/dispatch`);
  await desk.locator(`tr[data-incident="${id}"] form[action$="/close"] button`).click();
  await crew.locator('#standby').waitFor({ timeout: 30000 });
  const push = [];
  const PUSH_RUNS = Number(process.env.PUSH_RUNS ?? 20);
  for (let i = 0; i < PUSH_RUNS; i += 1) {
    await desk.goto(`${DESK}/dispatch`);
    const where = `プッシュ計測 ${Date.now()}-${i}`;
    await desk.fill('#location', where);
    await desk.selectOption('#team', { label: teamLabel });
    const t0 = performance.now();
    await Promise.all([desk.waitForURL(`${DESK}/dispatch`), desk.click('#create')]);
    await crew.locator('#incident p.big-text', { hasText: where }).waitFor({ timeout: 30000 });
    push.push(performance.now() - t0);
    const r = desk.locator('tr[data-incident]', { hasText: where });
    await r.waitFor();
    await r.locator('form[action$="/close"] button').click();
    await crew.locator('#standby').waitFor({ timeout: 30000 });
  }
  push.sort((a, b) => a - b);
  const pq = (p) => push[Math.min(push.length - 1, Math.ceil(p * push.length) - 1)];
  result.push_runs = push.length;
  result.push_p50_ms = Math.round(pq(0.5));
  result.push_p95_ms = Math.round(pq(0.95));
  console.log(JSON.stringify(result));
  if (process.env.OUT) {
    writeFileSync(process.env.OUT, JSON.stringify({ ...result, samples_ms: samples.map(Math.round), push_ms: push.map(Math.round) }, null, 2));
  }
} finally {
  await browser.close();
}
