// The bureau's statistics in the browser: a new user simulates Kawasaki's 2025 (91,157
// dispatches) into the demo's ems database with `simulate`, signs in on the desk and sees the
// year's dashboard: the charts, the tables, and a CSV behind every one of them. Hospital staff
// do not reach it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import {
  PORTS, httpsUrl, start, stopAll, waitForHttp, seededDataDir, runToCompletion, launchBrowser,
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
