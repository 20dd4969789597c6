// The incident from the 119 call to departure, in the browser: dispatcher → terminal push →
// phases → card → two taps → summary, the exception path, an unknown card, a wrong-team
// terminal, and the offline path with ems stopped mid-incident.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  PORTS, url, httpsUrl, CA, start, stop, stopAll, waitForHttp, seededDataDir, runToCompletion, deck, tabletCertificate, asTablet, TLS_DIR,
  launchBrowser, screenshot, DEMO, dispatcherLogin, createIncident, crewSignIn, placeCard,
  removeCard, Taps, timeline, openTablet,
  demoCommand,
  demoWithTablet,
} from '../lib/harness.mjs';

const EMS = httpsUrl(PORTS.ems);
const TERMINAL = url(PORTS.terminal);
let dataDir;
let browser;
let desk; // the dispatcher's page
let crew; // the tablet's page (中原救急1)
let panel; // the demo panel
let cards;


before(async () => {
  // The first run seeds everything and stops; the second serves (a new user's second run).
  ({ dataDir, browser, desk, crew, panel } = await demoWithTablet('demo'));
  cards = deck(dataDir).cards;
  await screenshot(desk, 'dispatcher-board');
  await screenshot(crew, 'terminal-standby');
});

after(async () => {
  await browser?.close();
  await stopAll();
});

function card(id) {
  const c = cards.find((x) => x.id === id);
  assert.ok(c, `deck has card ${id}`);
  return c;
}

async function closeIncident(id) {
  await desk.goto(`${EMS}/dispatch`);
  await desk.locator(`tr[data-incident="${id}"] form[action$="/close"] button`).click();
  await desk.waitForURL(`${EMS}/dispatch`);
}

test('consent path: 119 call → push to the terminal → phases → card → two taps → alerts → departure', async () => {
  const { id } = await createIncident(desk, EMS, { team: '中原救急1' });
  // Pushed, not reloaded: the tablet page is not navigated.
  await crew.locator(`#incident[data-incident="${id}"]`).waitFor({ timeout: 5000 });
  await screenshot(crew, 'terminal-incident-received');

  await crew.click('#phase-arrival');
  await crew.locator('#phase-arrival[data-state="done"]').waitFor();
  await crew.click('#phase-contact');
  await crew.locator('#phase-contact[data-state="done"]').waitFor();

  const doac = card('doac');
  await placeCard(panel, TERMINAL, 'doac');
  // From card placement to the summary, every tap on the tablet counts.
  const taps = new Taps(crew);
  await crew.locator('#face-ok').waitFor();
  await screenshot(crew, 'terminal-card-read');
  await taps.tap('#face-ok');
  await crew.locator('#consent-ok').waitFor();
  await screenshot(crew, 'terminal-consent');
  await taps.tap('#consent-ok');
  await crew.locator('#alerts').waitFor();
  assert.ok(taps.count <= 3, `at most 3 taps from card to summary, took ${taps.count}`);
  assert.equal(taps.count, 2);
  const classes = await crew.locator('#alerts li').evaluateAll((els) => els.map((e) => e.dataset.class));
  for (const expected of doac.expected_alerts) assert.ok(classes.includes(expected), `alert ${expected} in ${classes}`);
  assert.equal(classes[0], doac.expected_alerts[0], 'the anticoagulant alert comes first');
  // The hospital is told what reverses the drug.
  assert.match(await crew.locator('#alerts li[data-class="doac"] .reversal').first().textContent(), /拮抗薬: (イダルシズマブ|アンデキサネット)/);
  assert.match(await crew.locator('#patient').textContent(), new RegExp(doac.name.replace(/\s/g, '\\s*')));
  assert.match(await crew.locator('#lag').textContent(), /遅れ/);
  await screenshot(crew, 'terminal-summary');

  // Read in ten seconds: visits grouped by institution and department with the かかりつけ
  // first, drugs by product with running supplies first, the long tail one tap away.
  const visitRows = await crew.locator('#visits tr').evaluateAll((rows) => rows.map((r) => ({ k: r.dataset.kakaritsuke, text: r.textContent })));
  assert.ok(visitRows.length > 0 && visitRows.length <= 5, `grouped visits: ${visitRows.length} rows`);
  for (const r of visitRows) assert.match(r.text, /\d+回/);
  assert.ok(visitRows.slice(1).every((r) => r.k === 'false'), 'only the first row may be the かかりつけ');
  const running = await crew.locator('#drugs tr').evaluateAll((rows) => rows.map((r) => r.dataset.running));
  assert.ok(running.length > 0 && running.length <= 8, `grouped drugs: ${running.length} rows`);
  assert.ok(running.indexOf('false') === -1 || running.slice(running.indexOf('false')).every((x) => x === 'false'), `running supplies first: ${running}`);

  await crew.click('#show-full');
  await crew.locator('#summary[data-view="full"]').waitFor();
  await screenshot(crew, 'terminal-summary-full');
  // Five years of claims: the grouped full view stays a few screens, not the 20,000 px of one
  // row per visit; the rest opens with one tap.
  const height = await crew.evaluate(() => document.documentElement.scrollHeight);
  assert.ok(height < 8000, `full view is ${height} px tall`);
  console.log(`full view height: ${height} px`);
  if (await crew.locator('#visits-more').count()) {
    await crew.click('#visits-more summary');
    assert.ok(await crew.locator('#visits-more tr').first().isVisible(), 'the long tail opens with one tap');
  }

  // 搬送先選定: the ranked list explains each rank; a decline takes two taps (辞退, then the
  // reason) and moves that hospital last; the next is accepted in one tap.
  const ranked = crew.locator('#hospitals tr[data-eligible="true"]');
  await ranked.first().waitFor();
  const firstId = await ranked.first().getAttribute('data-hospital');
  assert.match(await ranked.first().textContent(), /\d+分・/);
  await ranked.first().locator('details.decline summary').click();
  await ranked.first().locator('button[data-reason="beds_full"]').click();
  // It may sit in the collapsed tail, so it is attached rather than visible.
  await crew.locator(`#hospitals tr[data-hospital="${firstId}"][data-declined="true"]`).waitFor({ state: 'attached' });
  const order = await crew.locator('#hospitals tr').evaluateAll((rows) => rows.map((r) => r.dataset.hospital));
  assert.equal(order[order.length - 1], firstId, `the declined hospital goes last: ${order}`);
  await crew.locator('#inquiry-count[data-count="1"]').waitFor();
  const nextId = await ranked.first().getAttribute('data-hospital');
  assert.notEqual(nextId, firstId);
  await ranked.first().locator('button.accept').click();
  await crew.locator('#inquiry-count[data-count="2"]').waitFor();
  await screenshot(crew, 'terminal-hospital-selection');

  await crew.click('#phase-in_vehicle');
  await crew.locator('#phase-in_vehicle[data-state="done"]').waitFor();
  await crew.click('#phase-departure');
  await crew.locator('#phase-departure[data-state="done"]').waitFor();

  const rows = await timeline(desk, EMS, id);
  await screenshot(desk, 'dispatcher-timeline-consent');
  const text = rows.join('\n');
  for (const expected of ['覚知', '指令: 中原救急1', '現着', '接触', '本人確認', '同意取得', '救急用サマリー閲覧', '閲覧', '照会:', '受入不可（ベッド満床）', '受入可', '車内収容', '現発']) {
    assert.ok(text.includes(expected), `timeline has ${expected}:\n${text}`);
  }
  assert.equal(rows.filter((r) => r.includes('現発')).length, 1);

  // Closing the incident drops the summary from the tablet.
  await removeCard(panel, TERMINAL);
  await closeIncident(id);
  await crew.locator('#standby').waitFor();
  assert.equal(await crew.locator('#summary').count(), 0);
});

test('exception path: the patient cannot consent, the reason is recorded with one tap', async () => {
  const { id } = await createIncident(desk, EMS, { team: '中原救急1', category: 'unconscious', note: '意識なし' });
  await crew.locator(`#incident[data-incident="${id}"]`).waitFor({ timeout: 5000 });
  await crew.click('#phase-arrival');
  await crew.locator('#phase-arrival[data-state="done"]').waitFor();
  const c = card('insulin');
  await placeCard(panel, TERMINAL, c.id);
  const taps = new Taps(crew);
  await crew.locator('#face-ok').waitFor();
  await taps.tap('#face-ok');
  await crew.locator('#exception-unconscious').waitFor();
  await screenshot(crew, 'terminal-exception-choices');
  await taps.tap('#exception-unconscious');
  await crew.locator('#alerts').waitFor();
  assert.equal(taps.count, 2);
  const classes = await crew.locator('#alerts li').evaluateAll((els) => els.map((e) => e.dataset.class));
  for (const expected of c.expected_alerts) assert.ok(classes.includes(expected), `alert ${expected} in ${classes}`);
  await screenshot(crew, 'terminal-summary-exception');
  await crew.click('#phase-contact');
  await crew.click('#phase-departure');
  await crew.locator('#phase-departure[data-state="done"]').waitFor();
  const text = (await timeline(desk, EMS, id)).join('\n');
  assert.ok(text.includes('同意なし閲覧（意識不明）'), text);
  assert.ok(text.includes('救急用サマリー閲覧'), text);
  await removeCard(panel, TERMINAL);
  await closeIncident(id);
  await crew.locator('#standby').waitFor();
});

test('a card with an unknown serial: the crew is told plainly and the outcome is recorded', async () => {
  const { id } = await createIncident(desk, EMS, { team: '中原救急1' });
  await crew.locator(`#incident[data-incident="${id}"]`).waitFor({ timeout: 5000 });
  await crew.click('#phase-arrival');
  await placeCard(panel, TERMINAL, 'unknown');
  await crew.click('#face-ok');
  await crew.click('#consent-ok');
  await crew.locator('#notice', { hasText: '該当する加入者が見つかりません' }).waitFor();
  assert.equal(await crew.locator('#alerts').count(), 0);
  await screenshot(crew, 'terminal-unknown-card');
  const text = (await timeline(desk, EMS, id)).join('\n');
  assert.ok(text.includes('マイナ救急の結果: 該当者なし'), text);
  assert.ok(!text.includes('救急用サマリー閲覧'), text);
  await removeCard(panel, TERMINAL);
  await closeIncident(id);
  await crew.locator('#standby').waitFor();
});

test('a terminal of another team neither sees the incident nor may read or write it', async () => {
  const other = start('terminal-saiwai', [
    'terminal', '--ems', EMS, '--ems-ca', CA, ...tabletCertificate(dataDir, 'saiwai1'),
    '--listen', `127.0.0.1:${PORTS.terminal2}`, '--outbox', join(dataDir, 'outbox-saiwai.db'),
    '--demo-deck', join(dataDir, 'cards'), '--launch-file', join(dataDir, 'saiwai.launch'),
  ]);
  try {
    const T2 = url(PORTS.terminal2);
    await waitForHttp(`${T2}/healthz`);
    const { page } = await openTablet(browser, join(dataDir, 'saiwai.launch'));
    await crewSignIn(page, T2, DEMO.crew['幸救急1']);
    const { id } = await createIncident(desk, EMS, { team: '中原救急1' });
    await crew.locator(`#incident[data-incident="${id}"]`).waitFor({ timeout: 5000 });
    await page.reload();
    await page.locator('#standby').waitFor();
    assert.equal(await page.locator(`#incident[data-incident="${id}"]`).count(), 0);
    await screenshot(page, 'other-team-terminal-standby');

    // The other team's terminal asks ems directly, with its own certificate: refused.
    const saiwai = (path, options) => asTablet(dataDir, 'saiwai1', `${EMS}${path}`, options);
    const signIn = await saiwai('/api/v1/terminal/sign-in', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ login: DEMO.crew['幸救急1'], password: DEMO.crewPassword }),
    });
    assert.equal(signIn.status, 200);
    const { session } = await signIn.json();
    const headers = { 'x-crew-session': session, 'content-type': 'application/json' };
    const get = await saiwai(`/api/v1/terminal/incidents/${id}`, { headers });
    assert.equal(get.status, 403);
    assert.equal((await get.json()).error.code, 'wrong_team');
    const post = await saiwai(`/api/v1/terminal/incidents/${id}/events`, {
      method: 'POST', headers,
      body: JSON.stringify({ idempotency_key: `wrong-${id}`, device_at_ms: Date.now(), event: { kind: 'phase', phase: 'arrival' } }),
    });
    assert.equal(post.status, 403);
    assert.equal((await post.json()).error.code, 'wrong_team');
    const certificate = Buffer.from(await (await import('node:fs/promises')).readFile(join(dataDir, 'cards', 'doac.cert.der'))).toString('base64');
    const face = await saiwai(`/api/v1/terminal/incidents/${id}/events`, {
      method: 'POST', headers,
      body: JSON.stringify({ idempotency_key: `face-${id}`, device_at_ms: Date.now(), event: { kind: 'identity_confirmed', certificate } }),
    });
    assert.equal(face.status, 403);
    const summary = await saiwai(`/api/v1/terminal/incidents/${id}/summary`, {
      method: 'POST', headers, body: JSON.stringify({ certificate }),
    });
    assert.equal(summary.status, 403);
    assert.equal((await summary.json()).error.code, 'wrong_team');
    const text = (await timeline(desk, EMS, id)).join('\n');
    assert.ok(!text.includes('現着'), `nothing was appended: ${text}`);
    await closeIncident(id);
    await crew.locator('#standby').waitFor();
  } finally {
    await stop(other);
  }
});

test('offline: ems stops mid-incident, taps queue with device times, and arrive once, in order, when it returns', async () => {
  // A standalone ems on the same database, as the demo's (HTTPS, the tablets by their
  // certificates), and 幸救急1's terminal talking to it. It reaches the demo's provider over
  // HTTPS with the development CA and the bureau's certificate.
  const emsArgs = ['ems', 'serve', '--db', join(dataDir, 'ems.db'), '--listen', `127.0.0.1:${PORTS.ems2}`, '--provider-ca', CA,
    '--tls-cert', join(TLS_DIR, 'ems.pem'), '--tls-key', join(TLS_DIR, 'ems.key'),
    '--device-ca-cert', join(TLS_DIR, 'device-ca.pem'), '--device-ca-key', join(TLS_DIR, 'device-ca.key')];
  const E2 = httpsUrl(PORTS.ems2);
  const T3 = url(PORTS.terminal3);
  let ems = start('ems-standalone', emsArgs);
  const term = start('terminal-offline', [
    'terminal', '--ems', E2, '--ems-ca', CA, ...tabletCertificate(dataDir, 'saiwai1'),
    '--listen', `127.0.0.1:${PORTS.terminal3}`, '--outbox', join(dataDir, 'outbox-offline.db'),
    '--demo-deck', join(dataDir, 'cards'), '--launch-file', join(dataDir, 'offline.launch'),
  ]);
  try {
    await waitForHttp(`${E2}/healthz`);
    await waitForHttp(`${T3}/healthz`);
    const deskPage = await (await browser.newContext({ locale: 'ja-JP' })).newPage();
    await dispatcherLogin(deskPage, E2);
    const { page: tablet, panel: panel3 } = await openTablet(browser, join(dataDir, 'offline.launch'));
    await crewSignIn(tablet, T3, DEMO.crew['幸救急1']);
    const { id } = await createIncident(deskPage, E2, { team: '幸救急1' });
    await tablet.locator(`#incident[data-incident="${id}"]`).waitFor({ timeout: 5000 });
    await tablet.click('#phase-arrival');
    await tablet.locator('#phase-arrival[data-state="done"]').waitFor();

    await stop(ems, 'SIGKILL'); // a crash, not a clean stop
    await tablet.locator('#link[data-link="offline"]').waitFor({ timeout: 10000 });
    await tablet.click('#phase-contact');
    await tablet.locator('#phase-contact[data-state="queued"]').waitFor();
    await placeCard(panel3, T3, 'doac');
    await tablet.click('#face-ok');
    await tablet.click('#consent-ok');
    await tablet.locator('#waiting').waitFor();
    // The crew hands the card back while waiting: the request already holds the certificate.
    await removeCard(panel3, T3);
    await tablet.locator('#card-step #waiting').waitFor();
    await tablet.click('#phase-in_vehicle');
    await tablet.locator('#phase-in_vehicle[data-state="queued"]').waitFor();
    assert.equal(await tablet.locator('#pending').getAttribute('data-pending'), '4');
    await screenshot(tablet, 'terminal-offline-queued');

    ems = start('ems-standalone', emsArgs);
    await waitForHttp(`${E2}/healthz`);
    // The queue drains by itself and the waiting summary request goes out.
    await tablet.locator('#alerts').waitFor({ timeout: 20000 });
    await tablet.locator('#phase-in_vehicle[data-state="done"]').waitFor();
    assert.equal(await tablet.locator('#pending').count(), 0);
    await screenshot(tablet, 'terminal-back-online-summary');

    const rows = await timeline(deskPage, E2, id);
    await screenshot(deskPage, 'dispatcher-timeline-offline');
    const kinds = rows.map((r) => r.split('\n').map((s) => s.trim()).filter(Boolean).join(' '));
    // The consent and its view are one request, sent in the outbox's order.
    const order = ['現着', '接触', '本人確認', '同意取得', '救急用サマリー閲覧', '車内収容'];
    const positions = order.map((k) => kinds.findIndex((r) => r.includes(k)));
    assert.ok(positions.every((p) => p >= 0), `all events arrived: ${kinds.join(' | ')}`);
    assert.deepEqual([...positions].sort((a, b) => a - b), positions, `in order: ${kinds.join(' | ')}`);
    for (const k of ['接触', '本人確認', '同意取得', '車内収容']) {
      assert.equal(kinds.filter((r) => r.includes(k)).length, 1, `${k} exactly once`);
    }
    // Queued taps keep the crew's time of tapping.
    assert.ok(kinds.find((r) => r.includes('接触')).includes('端末'), 'device time is kept');
    await deskPage.goto(`${E2}/dispatch`);
    await deskPage.locator(`tr[data-incident="${id}"] form[action$="/close"] button`).click();
  } finally {
    await stop(term);
    await stop(ems);
  }
});

test('nothing medical stays: the summary goes after the idle timeout and on sign-out, and its name and drugs are in no file the terminal wrote', async () => {
  const T4 = url(PORTS.terminal3);
  const outbox = join(dataDir, 'outbox-idle.db');
  const term = start('terminal-idle', [
    'terminal', '--ems', EMS, '--ems-ca', CA, ...tabletCertificate(dataDir, 'saiwai1'),
    '--listen', `127.0.0.1:${PORTS.terminal3}`, '--outbox', outbox,
    '--demo-deck', join(dataDir, 'cards'), '--idle-timeout-s', '3',
    '--launch-file', join(dataDir, 'idle.launch'),
  ]);
  try {
    await waitForHttp(`${T4}/healthz`);
    const { page: tablet, panel: panel4 } = await openTablet(browser, join(dataDir, 'idle.launch'));
    await crewSignIn(tablet, T4, DEMO.crew['幸救急1']);
    const { id } = await createIncident(desk, EMS, { team: '幸救急1' });
    await tablet.locator(`#incident[data-incident="${id}"]`).waitFor({ timeout: 5000 });
    const c = card('doac');
    const viewOnce = async () => {
      await placeCard(panel4, T4, c.id);
      await tablet.click('#face-ok');
      await tablet.click('#consent-ok');
      await tablet.locator('#alerts').waitFor();
    };
    await viewOnce();
    // No touch for longer than the idle timeout: the summary is dropped and the crew is told.
    await tablet.locator('#summary').waitFor({ state: 'detached', timeout: 15000 });
    await tablet.locator('#notice', { hasText: '一定時間操作がなかった' }).waitFor();
    await screenshot(tablet, 'terminal-idle-dropped');

    await removeCard(panel4, T4);
    // The same card again: its consent stands, one tap re-opens the summary.
    await placeCard(panel4, T4, c.id);
    await tablet.click('#reopen');
    await tablet.locator('#alerts').waitFor();
    const drugs = [...new Set(await tablet.locator('#summary td.drug-name').allTextContents())];
    assert.ok(drugs.length > 0, 'the summary lists drugs');
    await tablet.click('#sign-out');
    await tablet.locator('#sign-in').waitFor();
    assert.equal(await tablet.locator('#summary').count(), 0);
    const again = await tablet.evaluate(async () => (await fetch('/screen')).text());
    assert.ok(!again.includes(c.name), 'the summary is not served after sign-out');

    // Every file the terminal wrote: no name, no insurer number, no drug.
    await stop(term);
    const { readdir, readFile } = await import('node:fs/promises');
    const files = (await readdir(dataDir)).filter((f) => f.startsWith('outbox-idle.db'));
    assert.ok(files.length > 0, 'the outbox exists');
    for (const f of files) {
      const bytes = await readFile(join(dataDir, f));
      // Nor anything the outbox carried: delivered rows are deleted and zeroed.
      for (const needle of [c.name, ...drugs, 'identity_confirmed', 'consent', 'certificate', 'obtained']) {
        assert.equal(bytes.indexOf(Buffer.from(needle)), -1, `${f} holds ${needle}`);
      }
    }
    await closeIncident(id);
  } finally {
    await stop(term);
  }
});

test('two patients: a new card ends the old summary at once, each patient gets their own taps, a consented card re-opens, a withdrawal ends it', async () => {
  crew.on('dialog', (d) => d.accept()); // 「同意撤回」 asks for confirmation
  const { id } = await createIncident(desk, EMS, { team: '中原救急1', category: 'trauma', note: '車両事故 2名' });
  await crew.locator(`#incident[data-incident="${id}"]`).waitFor({ timeout: 5000 });
  await crew.click('#phase-arrival');
  await crew.locator('#phase-arrival[data-state="done"]').waitFor();

  // Patient 1: card A, two taps, the summary.
  const a = card('doac');
  await placeCard(panel, TERMINAL, a.id);
  await crew.click('#face-ok');
  await crew.click('#consent-ok');
  await crew.locator('#summary[data-patient="1"] #alerts').waitFor();
  await crew.locator('#show-full').waitFor();

  // Card B goes on the reader: A's summary and its 「全量を表示」 are gone at once.
  const b = card('insulin');
  await placeCard(panel, TERMINAL, b.id);
  await crew.locator('#face-ok').waitFor();
  assert.equal(await crew.locator('#summary').count(), 0, 'the old summary left the screen');
  assert.equal(await crew.locator('#show-full').count(), 0, 'no control fetches a view for the old card');
  assert.ok(!(await crew.content()).includes(a.name), "A's name is no longer on the page");
  // Asking the tablet for the full view anyway (a stale button, a replayed tap) is refused.
  const forged = await crew.evaluate(async (incident) => {
    const card = JSON.parse(document.querySelector('#face-ok').getAttribute('hx-vals')).card;
    const r = await fetch(`/incidents/${incident}/full`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ card }),
    });
    return r.text();
  }, id);
  assert.match(forged, /全量表示には/);
  await screenshot(crew, 'terminal-card-swapped');

  // Patient 2 goes through their own two taps.
  await crew.click('#face-ok');
  await crew.click('#consent-ok');
  await crew.locator('#summary[data-patient="2"] #alerts').waitFor();
  const classes = await crew.locator('#alerts li').evaluateAll((els) => els.map((e) => e.dataset.class));
  for (const expected of b.expected_alerts) assert.ok(classes.includes(expected), `alert ${expected} in ${classes}`);
  await crew.locator('#patients tr[data-patient="1"]').waitFor();
  await crew.locator('#patients tr[data-patient="2"]').waitFor();
  await screenshot(crew, 'terminal-two-patients');

  // Card A again: its consent stands, one tap re-opens it.
  await placeCard(panel, TERMINAL, a.id);
  await crew.locator('#reopen').waitFor();
  assert.equal(await crew.locator('#summary').count(), 0);
  await crew.click('#reopen');
  await crew.locator('#summary[data-patient="1"] #alerts').waitFor();

  // Patient 1 withdraws: the summary goes, and the card no longer opens anything.
  await crew.click('#withdraw-summary');
  await crew.locator('#summary').waitFor({ state: 'detached' });
  await crew.locator('#withdrawn').waitFor({ timeout: 10000 });
  assert.ok(!(await crew.content()).includes(a.name));
  await screenshot(crew, 'terminal-withdrawn');

  const text = (await timeline(desk, EMS, id)).join('\n');
  await screenshot(desk, 'dispatcher-timeline-two-patients');
  for (const expected of ['傷病者1 本人確認', '傷病者1 同意取得', '傷病者1 救急用サマリー閲覧',
    '傷病者2 本人確認', '傷病者2 同意取得', '傷病者2 救急用サマリー閲覧', '傷病者1 同意撤回']) {
    assert.ok(text.includes(expected), `timeline has ${expected}:\n${text}`);
  }
  for (const c of [a, b]) assert.ok(!text.includes(c.serial ?? '\u0000'), 'no certificate serial on the desk');
  assert.ok(!text.includes('全量版）閲覧'), 'the swapped card never got a full view');
  await removeCard(panel, TERMINAL);
  await closeIncident(id);
  await crew.locator('#standby').waitFor();
});

test('no web page can drive the tablet: another origin, a rebound host name and a window without the key are refused, in Chromium and with curl', async () => {
  const { id } = await createIncident(desk, EMS, { team: '中原救急1' });
  await crew.locator(`#incident[data-incident="${id}"]`).waitFor({ timeout: 5000 });
  await placeCard(panel, TERMINAL, 'doac');
  await crew.locator('#face-ok').waitFor();

  // A page on another origin (another port of loopback is the same site, so the browser
  // sends the tablet's cookie): its form post and its fetch are refused.
  const { createServer } = await import('node:http');
  const evil = createServer((req, res) => {
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end(`<!doctype html><form id="f" method="post" action="${TERMINAL}/incidents/${id}/face"></form>
      <script>
        fetch('${TERMINAL}/incidents/${id}/consent', { method: 'POST', credentials: 'include', mode: 'no-cors',
          headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'consent=obtained' })
          .finally(() => document.getElementById('f').submit());
      </script>`);
  });
  await new Promise((r) => evil.listen(PORTS.evil, '127.0.0.1', r));
  try {
    const attacker = await crew.context().newPage();
    await attacker.goto(`http://127.0.0.1:${PORTS.evil}/`);
    await attacker.waitForURL(`${TERMINAL}/incidents/${id}/face`);
    assert.match(await attacker.content(), /cross-origin request refused/);
    await screenshot(attacker, 'terminal-cross-origin-refused');
    await attacker.close();
  } finally {
    evil.close();
  }

  // DNS rebinding: the attacker's name resolves to loopback, but the Host is not allowed.
  const rebound = await crew.context().newPage();
  const resp = await rebound.goto(`http://rebind.test:${PORTS.terminal}/screen`);
  assert.equal(resp.status(), 403);
  await rebound.close();

  // A browser window that did not open the launch URL gets nothing.
  const stranger = await (await browser.newContext()).newPage();
  const s = await stranger.goto(`${TERMINAL}/`);
  assert.equal(s.status(), 403);
  assert.ok(!(await stranger.content()).includes('事案'), 'no incident data without the key');
  await stranger.close();

  // curl, as any process on the tablet would.
  const { execFileSync } = await import('node:child_process');
  const curl = (...args) => execFileSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', ...args], { encoding: 'utf8' });
  assert.equal(curl(`${TERMINAL}/screen`), '403', 'no cookie');
  assert.equal(curl('-X', 'POST', `${TERMINAL}/incidents/${id}/face`), '403', 'no cookie, no origin');
  assert.equal(curl('-H', `Host: rebind.test:${PORTS.terminal}`, `${TERMINAL}/healthz`), '403', 'foreign Host');
  const key = (await crew.context().cookies()).find((c) => c.name === 'terminal_key');
  assert.ok(key, 'the tablet window holds the key');
  assert.equal(curl('-X', 'POST', '-H', `Cookie: terminal_key=${key.value}`, `${TERMINAL}/incidents/${id}/face`), '403',
    'even with the stolen key, a POST without our Origin is refused');
  assert.equal(curl('-X', 'POST', '-H', `Cookie: terminal_key=${key.value}`, '-H', 'Origin: http://evil.example',
    `${TERMINAL}/incidents/${id}/face`), '403');
  const headers = execFileSync('curl', ['-s', '-D', '-', '-o', '/dev/null', '-H', `Cookie: terminal_key=${key.value}`, `${TERMINAL}/`], { encoding: 'utf8' });
  assert.match(headers, /content-security-policy: .*frame-ancestors 'none'/i);
  assert.ok(!/script-src[^;]*unsafe-inline/i.test(headers), 'no inline scripts allowed');

  // Nothing was recorded by any of it.
  const text = (await timeline(desk, EMS, id)).join('\n');
  assert.ok(!text.includes('本人確認'), `no face check was recorded: ${text}`);
  assert.ok(!text.includes('同意'), `no consent was recorded: ${text}`);
  await crew.locator('#face-ok').waitFor();
  await removeCard(panel, TERMINAL);
  await closeIncident(id);
  await crew.locator('#standby').waitFor();
});
