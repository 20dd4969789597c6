// The hospital's side in the browser: acceptance status into the tablet's ranking, the
// かかりつけ, vitals in two taps, a decline and re-selection with the 搬送困難事案 flag, the
// pre-arrival push to the chosen hospital only, and the signed handoff with its PDF and FHIR
// document.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import {
  PORTS, url, httpsUrl, CA, start, stopAll, screenshot, createIncident, placeCard, removeCard, Taps,
  timeline,
  demoCommand,
  demoWithTablet, hospitalLogin,
} from '../lib/harness.mjs';
import { fhirErrors } from '../lib/fhir.mjs';

const EMS = httpsUrl(PORTS.ems);
const TERMINAL = url(PORTS.terminal);
const A = 'kawasaki-municipal'; // 川崎市立川崎病院: the destination
const B = 'kanto-rosai'; // 関東労災病院: another hospital of the bureau
let dataDir;
let browser;
let desk;
let crew;
let panel;
let staffA;
let staffB;
let incident;


/** The tablet's hospital rows, in rank order: { id, eligible, text }. */
async function ranking() {
  // `text` is the row's one-line reason (the decline buttons say かかりつけ too).
  return crew.locator('#hospitals tr[data-hospital]').evaluateAll((rows) => rows.map((r) => ({
    id: r.dataset.hospital, eligible: r.dataset.eligible === 'true', text: r.querySelector('small').textContent,
  })));
}

/** Opens the collapsed tail of the ranking if `id` sits in it. */
async function showRow(id) {
  const row = crew.locator(`#hospitals tr[data-hospital="${id}"]`);
  if (!(await row.isVisible()) && (await crew.locator('#hospitals-more').count())) {
    await crew.click('#hospitals-more summary');
  }
  return row;
}

/** Sets every capability of the signed-in hospital to `value` and saves. */
async function setAll(page, value) {
  await page.goto(`${EMS}/hospital`);
  for (const r of await page.locator(`#status input[type=radio][value="${value}"]`).all()) await r.check();
  await Promise.all([page.waitForURL(`${EMS}/hospital/status`), page.click('#save-status')]);
  await page.locator('#message').waitFor();
}

/** Moves the incident's committed times `minutes` back, as if that long had passed on scene
 * (the 30-minute rule cannot be waited out in a test). Edits ems's own SQLite file. */
function backdate(id, minutes) {
  const ms = minutes * 60_000;
  execFileSync('sqlite3', ['-cmd', '.timeout 5000', join(dataDir, 'ems.db'),
    `UPDATE incident_event SET at_ms = at_ms - ${ms}, device_ms = device_ms - ${ms} WHERE incident_id = ${id};`
    + ` UPDATE incident SET created_ms = created_ms - ${ms} WHERE id = ${id};`]);
}

before(async () => {
  ({ dataDir, browser, desk, crew, panel } = await demoWithTablet('demo-hospital'));
  staffA = await hospitalLogin(browser, EMS, A);
  staffB = await hospitalLogin(browser, EMS, B);
});

after(async () => {
  await browser?.close();
  await stopAll();
});

test('a hospital\'s status reaches the tablet\'s ranking, and the かかりつけ counts once the summary is read', async () => {
  // B refuses everything: the tablet ranks it ineligible, saying why.
  await setAll(staffB, 'not_accepting');
  await screenshot(staffB, 'hospital-status-refusing');
  ({ id: incident } = await createIncident(desk, EMS, { team: '中原救急1', category: 'abdominal_pain', note: '腹痛、嘔吐' }));
  await crew.locator(`#incident[data-incident="${incident}"]`).waitFor({ timeout: 5000 });
  await crew.click('#phase-arrival');
  await crew.locator('#phase-arrival[data-state="done"]').waitFor();
  await crew.locator('#hospitals tr[data-hospital]').first().waitFor();
  const before = await ranking();
  const b = before.find((r) => r.id === B);
  assert.equal(b.eligible, false, `B refuses: ${b.text}`);
  assert.match(b.text, /受入不可/);
  assert.ok(before.every((r) => !r.text.includes('かかりつけ')), `no かかりつけ before the card is read: ${before.map((r) => r.text).join(' | ')}`);
  assert.match(await crew.locator('#statuses-note').textContent(), /\d+病院が登録/);

  // The card, two taps, the summary: now the ranking knows the patient's かかりつけ.
  await placeCard(panel, TERMINAL, 'doac');
  await crew.click('#face-ok');
  await crew.click('#consent-ok');
  await crew.locator('#alerts').waitFor();
  await crew.locator('#hospitals tr[data-hospital]').first().waitFor();
  const after = await ranking();
  const regular = after.find((r) => r.text.includes('かかりつけ'));
  assert.ok(regular, `the doac patient has a かかりつけ among the registry: ${after.map((r) => r.text).join(' | ')}`);
  const was = before.findIndex((r) => r.id === regular.id);
  const now = after.findIndex((r) => r.id === regular.id);
  assert.ok(now <= was, `the かかりつけ does not fall (${was} → ${now})`);
  if (was > 0 && regular.eligible) assert.ok(now < was, `the かかりつけ moves up (${was} → ${now})`);
  console.log(`かかりつけ ${regular.id}: rank ${was + 1} → ${now + 1}`);
  await screenshot(crew, 'terminal-ranking-kakaritsuke');
  await setAll(staffB, 'accepting');
});

test('vitals: each value in at most two taps, no keyboard', async () => {
  const taps = new Taps(crew);
  await taps.tap('#vitals-pad tr[data-sign="jcs"] button[data-key="II-10"]');
  await crew.locator('#latest-jcs', { hasText: 'II-10' }).waitFor();
  assert.equal(taps.count, 1, 'JCS: one tap');
  taps.count = 0;
  await taps.tap('#vitals-pad tr[data-sign="pulse"] button[data-key="110台"]');
  await taps.tap('#vitals-pad tr[data-sign="pulse"] .opened button[data-value="114"]');
  await crew.locator('#latest-pulse', { hasText: '114' }).waitFor();
  assert.equal(taps.count, 2, 'pulse: two taps');
  taps.count = 0;
  await taps.tap('#vitals-pad tr[data-sign="blood_pressure"] button[data-key="180台"]');
  await taps.tap('#vitals-pad tr[data-sign="blood_pressure"] .opened button[data-value="182"]');
  await crew.locator('#systolic-chosen').waitFor();
  await taps.tap('#vitals-pad tr[data-sign="blood_pressure"] button[data-key="100台"]');
  await taps.tap('#vitals-pad tr[data-sign="blood_pressure"] .opened button[data-value="104"]');
  await crew.locator('#latest-blood_pressure', { hasText: '182/104' }).waitFor();
  assert.equal(taps.count, 4, 'blood pressure: two taps for each value');
  await crew.click('#vitals-pad tr[data-sign="spo2"] button[data-key="94"]');
  await crew.locator('#latest-spo2', { hasText: '94' }).waitFor();
  assert.equal(await crew.locator('#vitals-pad input, #vitals-pad textarea').count(), 0, 'no keyboard');
  await screenshot(crew, 'terminal-vitals');
});

test('declines: each declined hospital goes last, the 4th call accepts, and 搬送困難事案 is flagged after 30 minutes on scene', async () => {
  // Three declines from the top of the list, then the 4th call is to A, which accepts.
  for (let i = 0; i < 3; i++) {
    const top = crew.locator('#hospitals tr[data-eligible="true"]').first();
    const id = await top.getAttribute('data-hospital');
    if (id === A) {
      // Keep A for the acceptance: decline the next one instead.
      const next = crew.locator('#hospitals tr[data-eligible="true"]').nth(1);
      await next.locator('details.decline summary').click();
      await next.locator('button[data-reason="busy"]').click();
    } else {
      await top.locator('details.decline summary').click();
      await top.locator('button[data-reason="beds_full"]').click();
    }
    await crew.locator(`#inquiry-count[data-count="${i + 1}"]`).waitFor();
  }
  const order = await ranking();
  assert.ok(order.slice(-3).every((r) => !r.eligible && r.text.includes('辞退済み')), 'the three that declined are last');
  const rowA = await showRow(A);
  await rowA.locator('button.accept').click();
  await crew.locator('#inquiry-count[data-count="4"]').waitFor();
  assert.equal(await crew.locator('#difficult-transport').count(), 0, 'four calls, but not yet 30 minutes on scene');
  backdate(incident, 40);
  // Any change re-reads the incident: the next vitals tap.
  await crew.click('#vitals-pad tr[data-sign="spo2"] button[data-key="95"]');
  await crew.locator('#difficult-transport').waitFor();
  await screenshot(crew, 'terminal-difficult-transport');
});

test('re-selection: a chosen hospital that calls back to decline loses the patient, pushed, and the crew chooses again', async () => {
  await staffB.goto(`${EMS}/hospital`);
  await staffB.locator('#incoming-table, #no-incoming').first().waitFor();
  await (await showRow(B)).locator('button.accept').click();
  await crew.locator('#inquiry-count[data-count="5"]').waitFor();
  await (await showRow(B)).locator(`#choose-${B}`).click();
  await crew.locator('#destination', { hasText: '関東労災病院' }).waitFor();
  await staffB.locator(`#incoming tr[data-incident="${incident}"]`).waitFor({ timeout: 1000 });
  // B phones back: no bed after all. The crew records it; B's screen drops the patient.
  const rowB = await showRow(B);
  await rowB.locator('details.decline summary').click();
  await rowB.locator('button[data-reason="beds_full"]').click();
  await crew.locator('#inquiry-count[data-count="6"]').waitFor();
  await staffB.locator(`#incoming tr[data-incident="${incident}"]`).waitFor({ state: 'detached', timeout: 2000 });
  assert.equal(await crew.locator('#destination').count(), 0, 'no destination until the crew chooses again');
  const refused = await staffB.request.get(`${EMS}/hospital/incidents/${incident}`);
  assert.equal(refused.status(), 403);
  assert.ok(await crew.locator('#difficult-transport').isVisible(), 'still a 搬送困難事案');
});

test('pre-arrival: the chosen hospital sees the patient pushed within a second, another hospital is refused', async () => {
  await staffA.goto(`${EMS}/hospital`);
  await staffA.locator('#incoming-table, #no-incoming').first().waitFor();
  await staffB.goto(`${EMS}/hospital`);
  await staffB.locator('#incoming-table, #no-incoming').first().waitFor();
  const rowA = await showRow(A);
  const tap = Date.now();
  await rowA.locator(`#choose-${A}`).click();
  await crew.locator('#destination').waitFor();
  const shown = Date.now();
  // Pushed, not polled: the page is not reloaded.
  await staffA.locator(`#incoming tr[data-incident="${incident}"]`).waitFor({ timeout: 1000 });
  console.log(`pre-arrival: on the hospital screen ${Date.now() - shown} ms after the tablet showed the choice (${Date.now() - tap} ms after the tap)`);
  await crew.click('#phase-in_vehicle');
  await crew.click('#phase-departure');
  await staffA.locator(`#incoming tr[data-incident="${incident}"][data-progress="搬送中"]`).waitFor({ timeout: 3000 });
  assert.match(await staffA.locator(`#incoming tr[data-incident="${incident}"]`).textContent(), /到着予定/);
  await screenshot(staffA, 'hospital-incoming');
  await staffB.reload();
  await staffB.locator('#incoming-table, #no-incoming').first().waitFor();
  assert.equal(await staffB.locator(`#incoming tr[data-incident="${incident}"]`).count(), 0, 'B does not list it');

  // The destination's staff open the patient: alerts with the reversal agent, vitals, drugs.
  await staffA.click(`#incoming tr[data-incident="${incident}"] a`);
  await staffA.locator('#patient-1').waitFor();
  assert.match(await staffA.locator('#patient-1 #alerts li[data-class="doac"] .reversal').first().textContent(), /拮抗薬/);
  assert.match(await staffA.locator('#vitals').textContent(), /182\/104/);
  assert.ok(await staffA.locator('#patient-1 #drugs tr').count() > 0);
  assert.ok(await staffA.locator('#patient-1 #visits tr').count() > 0);
  await screenshot(staffA, 'hospital-patient');
  // Another hospital asking for the same page gets the refusal, not the patient.
  const name = (await staffA.locator('#patient-1 #patient').textContent()).split('（')[0].trim();
  assert.ok(name.length > 1, name);
  const refused = await staffB.request.get(`${EMS}/hospital/incidents/${incident}`);
  assert.equal(refused.status(), 403);
  const body = await refused.text();
  assert.ok(!body.includes(name), 'no name for another hospital');
  assert.match(body, /表示できません/);

  // The dispatcher's board shows the team transporting.
  await desk.goto(`${EMS}/dispatch`);
  await desk.locator('#teams tr[data-team="中原救急1"][data-status="transporting"]').waitFor();
});

test('handoff: 病着, the doctor signs on the hospital screen, the PDF and the FHIR document are held', async () => {
  assert.equal(await staffA.locator('#sign-receipt').count(), 0, 'no receipt before 病着');
  await crew.click('#phase-hospital_arrival');
  await crew.locator('#phase-hospital_arrival[data-state="done"]').waitFor();
  // The hospital page refreshes on the push.
  await staffA.locator('#sign-receipt').waitFor({ timeout: 5000 });
  await staffA.fill('#received_by', '救急科 山田');
  await Promise.all([staffA.waitForURL(`${EMS}/hospital/incidents/${incident}`), staffA.click('#sign-receipt')]);
  await staffA.locator('#handoff-done', { hasText: '救急科 山田' }).waitFor();
  await crew.locator('#destination', { hasText: '引継ぎ受領' }).waitFor({ timeout: 5000 });
  await screenshot(staffA, 'hospital-handoff-signed');

  const pdf = await staffA.request.get(`${EMS}/hospital/incidents/${incident}/patients/1/handoff.pdf`);
  assert.equal(pdf.status(), 200);
  assert.equal(pdf.headers()['content-type'], 'application/pdf');
  const bytes = await pdf.body();
  assert.equal(bytes.subarray(0, 5).toString(), '%PDF-');
  const fhir = await staffA.request.get(`${EMS}/hospital/incidents/${incident}/patients/1/handoff.json`);
  assert.equal(fhir.status(), 200);
  const bundle = await fhir.json();
  assert.deepEqual(fhirErrors(bundle), [], 'FHIR.js and the document invariants accept it');
  const text = JSON.stringify(bundle);
  assert.ok(text.includes('救急科 山田'), 'the receipt is in the document');
  assert.ok(text.includes('"8867-4"'), 'the vitals are in it');
  // Another hospital cannot fetch either.
  for (const kind of ['pdf', 'json']) {
    const r = await staffB.request.get(`${EMS}/hospital/incidents/${incident}/patients/1/handoff.${kind}`);
    assert.notEqual(r.status(), 200, kind);
  }

  const rows = (await timeline(desk, EMS, incident)).join('\n');
  for (const expected of ['バイタル', '搬送先決定: 川崎市立川崎病院', '病着', '引継ぎ受領: 川崎市立川崎病院（救急科 山田）']) {
    assert.ok(rows.includes(expected), `timeline has ${expected}:\n${rows}`);
  }
  await removeCard(panel, TERMINAL);
});
