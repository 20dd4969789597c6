// The bureau's public page in Chromium at phone size: no login, Japanese and English, what the
// crew will ask and when it may look without consent, the contact the bureau set, and nothing
// wider than the phone.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import {
  BIN, PORTS, httpsUrl, start, stopAll, waitForHttp, seededDataDir, runToCompletion, launchBrowser,
  screenshot, demoCommand,
} from '../lib/harness.mjs';

const EMS = httpsUrl(PORTS.ems);
let browser;

before(async () => {
  const dataDir = seededDataDir();
  await runToCompletion('demo-seed-public', [...demoCommand(dataDir), '--exit-after-samples']);
  execFileSync(BIN, ['ems', 'set-public-contact', '--db', join(dataDir, 'ems.db'),
    '--contact', '川崎市消防局 救急課（テスト）'], { encoding: 'utf8' });
  start('demo-public', demoCommand(dataDir));
  await waitForHttp(`${EMS}/healthz`);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stopAll();
});

test('the public page reads on a phone, in Japanese and English, with no login', async () => {
  // A phone: 390 × 844 CSS pixels, touch, a fresh browser with no session.
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true, locale: 'ja-JP',
  });
  const page = await context.newPage();
  const res = await page.goto(`${EMS}/public/kawasaki-fd`);
  assert.equal(res.status(), 200);
  assert.equal(new URL(page.url()).pathname, '/public/kawasaki-fd', 'no sign-in');
  await screenshot(page, 'public-phone');
  assert.equal(await page.locator('html').getAttribute('lang'), 'ja');
  assert.match(await page.locator('#ja h1').textContent(), /マイナ救急/);
  assert.match(await page.locator('header').textContent(), /川崎市消防局/);
  assert.match(await page.locator('#carry').textContent(), /マイナ保険証/);
  assert.match(await page.locator('#register').textContent(), /利用登録/);
  assert.match(await page.locator('#ask').textContent(), /暗証番号は要りません/);
  assert.match(await page.locator('#exception').textContent(), /同意を得られず/);
  assert.match(await page.locator('#limits').textContent(), /6時間以内/, 'the bureau\'s viewing window');
  assert.match(await page.locator('#contact').textContent(), /川崎市消防局 救急課（テスト）/);
  const en = page.locator('#en');
  assert.equal(await en.getAttribute('lang'), 'en');
  assert.match(await en.textContent(), /No PIN is needed/);
  assert.match(await en.textContent(), /within 6 hours of the 119 call/);

  // Nothing wider than the phone, and type large enough to read.
  const { scrollWidth, clientWidth, fontSize } = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    clientWidth: document.documentElement.clientWidth,
    fontSize: parseFloat(getComputedStyle(document.querySelector('#carry p')).fontSize),
  }));
  assert.ok(scrollWidth <= clientWidth, `no sideways scrolling: ${scrollWidth} > ${clientWidth}`);
  assert.ok(fontSize >= 16, `body text ${fontSize}px`);

  // The English link jumps to the English half.
  await page.click('header a[href="#en"]');
  assert.ok(await en.locator('h1').isVisible());

  const missing = await page.request.get(`${EMS}/public/no-such-fd`);
  assert.equal(missing.status(), 404);
  await context.close();
});
