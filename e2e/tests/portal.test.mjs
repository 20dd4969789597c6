// The patient's side: a synthetic patient whose card a crew read (twice with consent, once
// without), and whose copy the destination hospital's staff then read, opens the patient
// portal on their own computer, their emulated card on a PC/SC reader (pcscd with
// vsmartcard-vpcd, started by the project's script), types a wrong PIN and is told the tries
// left, then the right one, and sees exactly the four accesses the test made, by organisation
// (the hospital's named with the bureau that passed the copy on), in Japanese and in English.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  PORTS, url, httpsUrl, CA, start, stopAll, screenshot, createIncident, placeCard, removeCard, launchUrl,
  deck, demoWithTablet, hospitalLogin,
} from '../lib/harness.mjs';

const EMS = httpsUrl(PORTS.ems);
const TERMINAL = url(PORTS.terminal);
const PATIENT = 'insulin'; // a deck card the demo's own samples never read
const OTHER = 'dialysis';
const HOSPITAL = 'kawasaki-municipal'; // 川崎市立川崎病院
let dataDir;
let browser;
let desk;
let crew;
let panel;

before(async () => {
  ({ dataDir, browser, desk, crew, panel } = await demoWithTablet('demo-portal'));
});

after(async () => {
  await browser?.close();
  await stopAll();
});

async function closeIncident(id) {
  await desk.goto(`${EMS}/dispatch`);
  await desk.locator(`tr[data-incident="${id}"] form[action$="/close"] button`).click();
  await desk.waitForURL(`${EMS}/dispatch`);
  await crew.locator('#standby').waitFor();
}

/** The portal's history rows as the patient reads them. */
async function rows(page) {
  return page.locator('li.access').evaluateAll((els) => els.map((e) => ({
    when: e.querySelector('.when').textContent,
    who: e.querySelector('.who').textContent,
    via: e.querySelector('.via')?.textContent ?? null,
    basis: e.querySelector('.basis').textContent,
    sections: e.querySelector('.sections').textContent,
    exception: e.classList.contains('exception'),
  })));
}

/** The tablet's ranking row of hospital `id`, the collapsed tail opened if it sits there. */
async function hospitalRow(id) {
  const row = crew.locator(`#hospitals tr[data-hospital="${id}"]`);
  if (!(await row.isVisible()) && (await crew.locator('#hospitals-more').count())) {
    await crew.click('#hospitals-more summary');
  }
  return row;
}

/** How many hospital reads ems has reported to the provider (its outbox, in its own SQLite
 * file). */
function delivered() {
  return Number(execFileSync('sqlite3', ['-cmd', '.timeout 5000', join(dataDir, 'ems.db'),
    'SELECT count(*) FROM hospital_read_outbox WHERE delivered_ms IS NOT NULL']).toString().trim());
}

/** Waits until ems has reported `n` hospital reads in all. */
async function reported(n) {
  for (let i = 0; i < 100 && delivered() < n; i += 1) await new Promise((r) => setTimeout(r, 100));
  assert.equal(delivered(), n, `ems reported ${n} hospital reads to the provider`);
}

/** Types the PIN into the portal's form and submits it. */
async function enterPin(page, pin) {
  await page.fill('#pin', pin);
  await Promise.all([page.waitForURL(`${url(PORTS.portal)}/sign-in`), page.click('button[type=submit]')]);
}

/** Japan time as the portal writes it, minute precision. */
function jst(ms) {
  return new Date(ms + 9 * 3600_000).toISOString().slice(0, 16).replace('T', ' ');
}

test('a patient signs in with their card and PIN and sees exactly the accesses the crew made', async () => {
  const t0 = Date.now();
  // Incident 1: consent, the summary, then the full view; another patient's card too.
  const first = await createIncident(desk, EMS, { team: '中原救急1' });
  await crew.locator(`#incident[data-incident="${first.id}"]`).waitFor({ timeout: 5000 });
  await crew.click('#phase-arrival');
  await crew.locator('#phase-arrival[data-state="done"]').waitFor();
  await crew.click('#phase-contact');
  await crew.locator('#phase-contact[data-state="done"]').waitFor();
  await placeCard(panel, TERMINAL, PATIENT);
  await crew.click('#face-ok');
  await crew.click('#consent-ok');
  await crew.locator('#alerts').waitFor();
  await crew.click('#show-full');
  await crew.locator('#summary[data-view="full"]').waitFor();
  await removeCard(panel, TERMINAL);
  await placeCard(panel, TERMINAL, OTHER);
  await crew.click('#face-ok');
  await crew.click('#consent-ok');
  await crew.locator('#summary').waitFor();
  await removeCard(panel, TERMINAL);
  // The hospital accepts on the phone, the crew chooses it, its staff open the patient once.
  await (await hospitalRow(HOSPITAL)).locator('button.accept').click();
  await crew.locator('#inquiry-count[data-count="1"]').waitFor();
  // 傷病者1を搬送: the patient (the other card's holder stays behind).
  await (await hospitalRow(HOSPITAL)).locator(`#choose-${HOSPITAL}-1`).click();
  await crew.locator('#destination').waitFor();
  const staff = await hospitalLogin(browser, EMS, HOSPITAL);
  const before = delivered();
  const opened = await staff.request.get(`${EMS}/hospital/incidents/${first.id}`);
  assert.equal(opened.status(), 200);
  // One read: the patient's copy, with the crew's basis.
  const reads = (await opened.text()).split('救急隊が本人の同意を得て閲覧').length - 1;
  assert.equal(reads, 1, 'the transported patient\'s copy only');
  await staff.context().close();
  // The read reaches the provider before the next incident's access.
  await reported(before + 1);
  await closeIncident(first.id);

  // Incident 2: the patient cannot consent.
  const second = await createIncident(desk, EMS, { team: '中原救急1', category: 'unconscious', note: '意識なし' });
  await crew.locator(`#incident[data-incident="${second.id}"]`).waitFor({ timeout: 5000 });
  await crew.click('#phase-arrival');
  await crew.locator('#phase-arrival[data-state="done"]').waitFor();
  await placeCard(panel, TERMINAL, PATIENT);
  await crew.click('#face-ok');
  await crew.click('#exception-unconscious');
  await crew.locator('#alerts').waitFor();
  await removeCard(panel, TERMINAL);
  await closeIncident(second.id);
  const t1 = Date.now();

  // The patient, at home, with their own card on a PC/SC reader.
  execFileSync('bash', [join('..', 'scripts', 'pcscd-vpcd'), 'start'], { stdio: 'inherit' });
  const card = deck(dataDir).cards.find((c) => c.id === PATIENT);
  start('card', ['card', 'emulate', '--profile', join(dataDir, 'cards', card.profile_file)]);
  const launchFile = join(dataDir, 'patient-portal.launch');
  start('portal', [
    'portal', '--provider', httpsUrl(PORTS.provider), '--provider-ca', CA,
    '--reader', 'Virtual PCD 00 00',
    '--listen', `127.0.0.1:${PORTS.portal}`, '--launch-file', launchFile,
  ]);
  for (let i = 0; i < 200 && !existsSync(launchFile); i += 1) await new Promise((r) => setTimeout(r, 100));
  const context = await browser.newContext({ viewport: { width: 1024, height: 800 }, locale: 'ja-JP' });
  const patient = await context.newPage();
  await patient.goto(launchUrl(launchFile));
  await patient.waitForURL(`${url(PORTS.portal)}/`);
  assert.match(await patient.locator('.card-status').textContent(), /暗証番号の残り回数: 3回/);
  await screenshot(patient, 'portal-start');

  // A wrong PIN: the tries left, and no history.
  await enterPin(patient, '9999');
  assert.match(await patient.locator('.problem').textContent(), /暗証番号が違います。あと2回/);
  assert.match(await patient.locator('.card-status').textContent(), /残り回数: 2回/);
  assert.equal(await patient.locator('li.access').count(), 0);
  await screenshot(patient, 'portal-wrong-pin');

  // The right PIN: the four accesses, newest first, by organisation, never the individual.
  await enterPin(patient, '1234');
  await patient.locator('#history').waitFor();
  const seen = await rows(patient);
  assert.equal(seen.length, 4, `exactly the four accesses: ${JSON.stringify(seen)}`);
  assert.deepEqual(seen.map((r) => r.who), ['川崎市消防局', '川崎市立川崎病院', '川崎市消防局', '川崎市消防局']);
  assert.deepEqual(seen.map((r) => r.via), [null, '川崎市消防局の救急隊から搬送時に引き継いだ情報を閲覧', null, null]);
  assert.deepEqual(seen.map((r) => r.basis), ['同意なし（意識不明）', '同意あり', '同意あり', '同意あり']);
  assert.deepEqual(seen.map((r) => r.exception), [true, false, false, false]);
  assert.match(seen[0].sections, /受診歴（3か月）/, 'the exception read the summary');
  assert.match(seen[1].sections, /受診歴（3か月）/, 'the hospital read the summary the crew passed on');
  assert.match(seen[2].sections, /受診歴（5年）/, 'the crew\'s full view');
  assert.match(seen[3].sections, /受診歴（3か月）、薬剤情報（3か月）/);
  for (const r of seen) {
    // 2026年11月27日 20:47 JST, in Japan time
    const m = r.when.match(/^(\d{4})年(\d{1,2})月(\d{1,2})日 (\d{2}):(\d{2}) JST$/);
    assert.ok(m, `a Japanese date: ${r.when}`);
    const when = `${m[1]}-${m[2].padStart(2, '0')}-${m[3].padStart(2, '0')} ${m[4]}:${m[5]}`;
    assert.ok(when >= jst(t0 - 60_000) && when <= jst(t1 + 60_000), `${r.when} within the test`);
  }
  const text = await patient.locator('main').textContent();
  assert.ok(!/中原救急|crew10|K-0|er-kawasaki/.test(text), 'neither the team, the crew member nor the staff member is shown');
  await screenshot(patient, 'portal-history');

  // The same, in English, for a foreign resident.
  await patient.goto(`${url(PORTS.portal)}/?lang=en`);
  await enterPin(patient, '1234');
  const en = await rows(patient);
  assert.equal(en.length, 4);
  assert.deepEqual(en.map((r) => r.basis), ['without consent (unconscious)', 'with your consent', 'with your consent', 'with your consent']);
  assert.match(en[1].via, /ambulance crew of 川崎市消防局/);
  assert.match(en[2].sections, /visits \(5 years\)/);
  assert.equal(await patient.locator('html').getAttribute('lang'), 'en');
  await screenshot(patient, 'portal-history-en');

  // Finishing keeps nothing: the start page again.
  await patient.click('a.button');
  await patient.locator('#sign-in').waitFor();
  assert.match(await patient.locator('.card-status').textContent(), /PIN tries left: 3/, 'the right PIN reset the count');
});
