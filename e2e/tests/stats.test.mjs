// The bureau's statistics in the browser: a new user simulates Kawasaki's 2025 (91,157
// dispatches) into the demo's ems database with `simulate`, signs in on the desk and sees the
// year's dashboard: the charts, the tables, and a CSV behind every one of them. Hospital staff
// do not reach it. The privacy officer reviews the year's views without consent.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import {
  BIN, PORTS, httpsUrl, start, stopAll, waitForHttp, seededDataDir, runToCompletion, launchBrowser,
  screenshot, DEMO, ARTIFACTS, demoCommand,
} from '../lib/harness.mjs';

const EMS = httpsUrl(PORTS.ems);
let dataDir;
let browser;
let page;

async function signIn(context, login, password, landing) {
  const p = await context.newPage();
  await p.goto(`${EMS}/login`);
  await p.fill('#bureau', DEMO.bureau);
  await p.fill('#login', login);
  await p.fill('#password', password);
  await Promise.all([p.waitForURL(`${EMS}${landing}`), p.click('button[type=submit]')]);
  return p;
}

before(async () => {
  dataDir = seededDataDir();
  await runToCompletion('demo-seed-stats', [...demoCommand(dataDir), '--exit-after-samples']);
  // What the README tells a new user to run.
  await runToCompletion('simulate', [
    'simulate', '--bureau', 'kawasaki', '--year', '2025', '--db', join(dataDir, 'ems.db'),
  ]);
  start('demo-stats', demoCommand(dataDir));
  await waitForHttp(`${EMS}/healthz`);
  browser = await launchBrowser();
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'ja-JP' });
  page = await signIn(context, 'admin', 'admin-2026-demo', '/dispatch');
});

after(async () => {
  await browser?.close();
  await stopAll();
});

/** The CSV behind a link, as rows of cells (the BOM removed; no quoted commas in these). */
async function csvRows(href) {
  const res = await page.request.get(new URL(href, EMS).toString());
  assert.equal(res.status(), 200, href);
  assert.match(res.headers()['content-type'], /^text\/csv/);
  const text = await res.text();
  assert.ok(text.startsWith('\ufeff'), 'a BOM, so Excel reads UTF-8');
  return text.slice(1).trim().split('\r\n').flatMap((l) => l.split('\n')).map((l) => l.split(','));
}

test('a simulated year of Kawasaki fills the dashboard: funnel, reasons, phase times, inquiries, exception views, teams and wards, each with its CSV', async () => {
  await page.goto(`${EMS}/stats`);
  await page.selectOption('#year', '2025');
  const started = Date.now();
  await Promise.all([page.waitForURL(`${EMS}/stats?year=2025`), page.click('form[action="/stats"] button[type=submit]')]);
  await page.locator('#teams table').waitFor();
  const ms = Date.now() - started;
  writeFileSync(join(ARTIFACTS, 'stats-render-ms.txt'), `${ms}\n`);
  await screenshot(page, 'stats-2025');

  assert.equal(await page.locator('#stats-year').textContent(), '2025');
  assert.equal(await page.locator('#total-dispatches').textContent(), '91157', 'Kawasaki\'s 2025 dispatches');
  const viewed = Number((await page.locator('#total-viewed').textContent()).split('（')[0]);
  assert.ok(viewed > 4000 && viewed < 14000, `viewed ${viewed}`);
  assert.ok(Number(await page.locator('#total-exception-views').textContent()) > 0);
  assert.ok(Number(await page.locator('#total-difficult').textContent()) > 0);

  // Every chart is an SVG drawn with its data, titled in Japanese.
  for (const [id, title] of [
    ['funnel', '月別 利用ファネル'], ['failures', '閲覧に至らなかった理由'], ['phases', '活動時間の平均'],
    ['inquiries', '照会回数の分布'], ['exceptions', '同意なし（例外）閲覧'], ['hours', '覚知時刻別'],
  ]) {
    const svg = page.locator(`#${id} figure.chart svg`);
    assert.equal(await svg.count(), 1, `${id} has a chart`);
    assert.match(await svg.locator('text').allTextContents().then((t) => t.join(' ')), new RegExp(title));
    assert.ok(await svg.locator('rect').count() > 3, `${id} draws bars`);
  }

  // The monthly table and its CSV say the same, and add up to the year.
  const monthly = await csvRows(await page.locator('#funnel a.csv').getAttribute('href'));
  assert.deepEqual(monthly[0].slice(0, 7), ['月', '出場', '実施', 'カード所持', '保険証利用登録あり', '同意・例外', '閲覧']);
  assert.equal(monthly.length, 1 + 12 + 1, 'a header, twelve months, the year');
  const year = monthly.at(-1);
  assert.equal(year[0], '年計');
  assert.equal(Number(year[1]), 91157);
  assert.equal(monthly.slice(1, 13).reduce((s, r) => s + Number(r[1]), 0), 91157);
  assert.equal(Number(year[6]), viewed);
  const pageYear = await page.locator('#funnel tbody tr').last().locator('td').allTextContents();
  assert.deepEqual(pageYear, year.slice(1), 'the page\'s year row is the CSV\'s');

  // 図表1-33: used and not used, each phase in m:ss; used cases stay longer in the vehicle.
  const phases = await csvRows(await page.locator('#phases a.csv').getAttribute('href'));
  const [, used, notUsed] = [phases[1], phases[2], phases[3]];
  assert.equal(used[0], '活用あり');
  assert.equal(notUsed[0], '活用なし');
  const seconds = (mss) => { const [m, s] = mss.split(':').map(Number); return m * 60 + s; };
  assert.ok(seconds(used[4]) > seconds(notUsed[4]), `車内収容→現発 ${used[4]} vs ${notUsed[4]}`);

  // Teams (31) and wards (7) each with their CSV; the rows add up to the year.
  const teams = await csvRows(await page.locator('#teams a.csv').getAttribute('href'));
  assert.equal(teams.length - 1, 31);
  assert.equal(teams.slice(1).reduce((s, r) => s + Number(r[1]), 0), 91157);
  const wards = await csvRows(await page.locator('#wards a.csv').getAttribute('href'));
  assert.equal(wards.length - 1, 7);
  for (const id of ['failures', 'inquiries', 'exceptions', 'hours']) {
    const rows = await csvRows(await page.locator(`#${id} a.csv`).getAttribute('href'));
    assert.ok(rows.length > 2, `${id} CSV has rows`);
  }
  const hours = await csvRows(await page.locator('#hours a.csv').getAttribute('href'));
  assert.equal(hours.slice(1).reduce((s, r) => s + Number(r[1]), 0), 91157);
});

test('hospital staff do not reach the statistics, and a table that does not exist is a 404', async () => {
  const context = await browser.newContext({ locale: 'ja-JP' });
  const staff = await signIn(context, 'er-kawasaki-municipal', 'er-2026-demo', '/hospital');
  await staff.goto(`${EMS}/stats?year=2025`);
  assert.equal(new URL(staff.url()).pathname, '/hospital');
  const csv = await staff.request.get(`${EMS}/stats/monthly.csv?year=2025`, { maxRedirects: 0 });
  assert.notEqual(csv.status(), 200);
  const missing = await page.request.get(`${EMS}/stats/secrets.csv`);
  assert.equal(missing.status(), 404);
  await context.close();
});

test('the privacy officer reviews the year\'s views without consent, each decision chained, and sees nothing else', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'ja-JP' });
  const officer = await signIn(context, 'privacy', 'privacy-2026-demo', '/review');
  const waiting = Number(await officer.locator('#waiting').textContent());
  assert.ok(waiting > 100, `a simulated year holds many exception views: ${waiting}`);
  // Every one of 2025's is older than the 14 days a review is due in: highlighted.
  assert.equal(Number(await officer.locator('#overdue').textContent()), waiting);
  assert.ok(await officer.locator('#queue tr.overdue').count() >= waiting);
  await screenshot(officer, 'review-queue');

  // The oldest waiting view, with its incident's context.
  const first = officer.locator('#queue tbody tr').first();
  const incident = await first.locator('td').nth(1).textContent();
  await Promise.all([officer.waitForURL(/\/review\/\d+\/\d+$/), first.locator('a').click()]);
  const detail = officer.url();
  assert.match(await officer.locator('h1').textContent(), new RegExp(incident));
  assert.match(await officer.locator('#reason').textContent(), /意識|意思疎通/);
  assert.match(await officer.locator('#contact').textContent(), /あり|記録なし/);

  // "Not justified" needs a reason; with one, it is recorded and the queue moves on.
  await officer.check('#not-justified');
  await Promise.all([officer.waitForURL(detail), officer.click('#decide')]);
  assert.match(await officer.locator('.banner.error').textContent(), /理由/);
  await officer.check('#not-justified');
  await officer.fill('#comment', '接触前の閲覧のため確認が必要');
  await Promise.all([officer.waitForURL(`${EMS}/review`), officer.click('#decide')]);
  assert.equal(Number(await officer.locator('#waiting').textContent()), waiting - 1);
  await officer.goto(detail);
  assert.match(await officer.locator('#decision').textContent(), /不適切/);
  assert.equal(await officer.locator('#decide').count(), 0, 'decided once');
  // A second decision on the same view, posted by hand, changes nothing.
  const csrf = await officer.locator('input[name=csrf]').first().getAttribute('value');
  const again = await officer.request.post(detail, {
    form: { csrf, decision: 'justified', comment: '' },
    headers: { origin: EMS },
  });
  assert.equal(again.status(), 200);
  assert.match(await again.text(), /審査済み/);

  // The decision is in the hash-chained review log, which verifies.
  const out = execFileSync(BIN, ['ems', 'verify-views', '--db', join(dataDir, 'ems.db')], { encoding: 'utf8' });
  assert.match(out, /view log intact/);
  assert.match(out, /review log intact: 1 decisions/);

  // The report per crew member: every team's crew member, and in the simulated year no view
  // came before its patient was contacted.
  await officer.goto(`${EMS}/review`);
  await Promise.all([officer.waitForURL(`${EMS}/review/crew`), officer.click('#crew-report')]);
  const crewRows = officer.locator('#crew tbody tr');
  assert.equal(await crewRows.count(), 31);
  const beforeContact = await crewRows.evaluateAll((rows) => rows.map((r) => r.querySelectorAll('td')[3].textContent));
  assert.ok(beforeContact.every((t) => t.startsWith('0（')), beforeContact.join(' '));
  await screenshot(officer, 'review-crew');

  // The officer's role reaches nothing else; the desk does not reach the review.
  for (const path of ['/dispatch', '/stats', '/admin']) {
    await officer.goto(`${EMS}${path}`);
    assert.equal(new URL(officer.url()).pathname, '/review', path);
  }
  await officer.goto(`${EMS}/hospital`);
  assert.notEqual(new URL(officer.url()).pathname, '/hospital');
  await page.goto(`${EMS}/review`);
  assert.equal(new URL(page.url()).pathname, '/dispatch', 'an admin is not the privacy officer');
  await context.close();
});
