// Test harness: starts the project's own processes (the demo, a standalone ems, another
// terminal), launches Debian's Chromium through playwright-core, and keeps screenshots.

import { spawn } from 'node:child_process';
import https from 'node:https';
import { mkdirSync, mkdtempSync, readFileSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const BIN = process.env.MYNA_BIN;
if (!BIN) throw new Error('MYNA_BIN must name the myna-kyukyu binary (scripts/e2e sets it)');
export const ARTIFACTS = process.env.E2E_ARTIFACTS || join(process.cwd(), 'artifacts');
mkdirSync(ARTIFACTS, { recursive: true });

// Ports away from the demo's defaults, so a demo a developer left running does not interfere.
export const PORTS = { provider: 18440, ems: 18441, terminal: 18442, terminal2: 18443, ems2: 18444, terminal3: 18445, evil: 18446, portal: 18447, demoPortal: 18448 };
export const url = (port) => `http://127.0.0.1:${port}`;
/** The provider and ems of the demo serve HTTPS with the development CA in E2E_TLS. */
export const httpsUrl = (port) => `https://127.0.0.1:${port}`;
export const TLS_DIR = process.env.E2E_TLS;
if (!TLS_DIR) throw new Error('E2E_TLS must name the development CA directory (scripts/e2e makes it)');
export const CA = join(TLS_DIR, 'ca.pem');

const children = new Set();

/** Starts a process; its output goes to a log file among the artifacts. */
export function start(name, args) {
  const log = createWriteStream(join(ARTIFACTS, `${name}.log`), { flags: 'a' });
  const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'info' } });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  child.exitPromise = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

/** Stops a process: SIGKILL is a crash, SIGTERM a clean stop. */
export async function stop(child, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  await child.exitPromise;
}

export async function stopAll() {
  await Promise.all([...children].map((c) => stop(c, 'SIGKILL')));
}

/** Waits until GET `u` answers 200 (the process is up), or fails after `ms`. */
export async function waitForHttp(u, ms = 240_000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(u);
      if (r.ok) return;
      last = `status ${r.status}`;
    } catch (e) {
      last = e.message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${u} did not come up: ${last}`);
}

/** The demo on the test ports, with a small population, keeping its data in `dataDir`. */
export function demoCommand(dataDir) {
  return [
    'demo', '--data-dir', dataDir, '--persons', '2000', '--tls-dir', TLS_DIR,
    '--listen', `127.0.0.1:${PORTS.provider}`,
    '--ems-listen', `127.0.0.1:${PORTS.ems}`,
    '--terminal-listen', `127.0.0.1:${PORTS.terminal}`,
    '--portal-listen', `127.0.0.1:${PORTS.demoPortal}`,
  ];
}

/** A data directory seeded by one `demo --exit-after-samples` run, shared by the tests. */
export function seededDataDir() {
  return mkdtempSync(join(tmpdir(), 'myna-e2e-'));
}

export async function runToCompletion(name, args) {
  const child = start(name, args);
  const { code, signal } = await child.exitPromise;
  if (code !== 0) throw new Error(`${name} exited with ${code ?? signal}; see ${ARTIFACTS}/${name}.log`);
}

export function deck(dataDir) {
  return JSON.parse(readFileSync(join(dataDir, 'cards', 'deck.json'), 'utf8'));
}

/** The `terminal` options of a demo tablet's client certificate (it enrolled in the demo). */
export function tabletCertificate(dataDir, file) {
  return ['--cert', join(dataDir, 'terminals', `${file}.pem`), '--key', join(dataDir, 'terminals', `${file}.key`)];
}

/**
 * A request to ems as a tablet does: over TLS with the tablet's client certificate (fetch
 * cannot present one). Resolves to `{ status, json() }`.
 */
export function asTablet(dataDir, file, target, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request(target, {
      method,
      headers,
      ca: readFileSync(CA),
      cert: readFileSync(join(dataDir, 'terminals', `${file}.pem`)),
      key: readFileSync(join(dataDir, 'terminals', `${file}.key`)),
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, json: () => JSON.parse(text) }));
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

/** The one-time launch URL a terminal wrote (`--launch-file`; the demo's is terminal.launch). */
export function launchUrl(file) {
  return readFileSync(file, 'utf8').trim();
}

/**
 * Opens a terminal's crew UI the way a tablet does: a browser context (the tablet's window)
 * redeems the launch URL, which sets the window's key. The demo panel is a page of the same
 * window. Returns { context, page, panel }.
 */
export async function openTablet(browser, launchFile, options = {}) {
  const context = await browser.newContext({ locale: 'ja-JP', ...options });
  const page = await context.newPage();
  await page.goto(launchUrl(launchFile));
  const panel = await context.newPage();
  return { context, page, panel };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    // A home whose NSS database trusts the development CA (scripts/e2e adds it with certutil,
    // as the README tells a user to): the desk opens on HTTPS without a warning.
    env: { ...process.env, HOME: process.env.E2E_HOME },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      // A DNS-rebinding name: it resolves to the tablet's loopback address.
      '--host-resolver-rules=MAP rebind.test 127.0.0.1',
    ],
  });
}

let shot = 0;
/** Keeps a screenshot of `page` as a test artifact. */
export async function screenshot(page, name) {
  shot += 1;
  await page.screenshot({ path: join(ARTIFACTS, `${String(shot).padStart(2, '0')}-${name}.png`), fullPage: true });
}

export const DEMO = {
  bureau: 'kawasaki-fd',
  dispatcher: ['dispatcher', 'dispatch-119'],
  crewPassword: 'crew-2026-demo',
  // Team → its crew login in the Kawasaki seed.
  crew: { '中原救急1': 'crew10', '幸救急1': 'crew06' },
};

export async function dispatcherLogin(page, emsUrl) {
  await page.goto(`${emsUrl}/login`);
  await page.fill('#bureau', DEMO.bureau);
  await page.fill('#login', DEMO.dispatcher[0]);
  await page.fill('#password', DEMO.dispatcher[1]);
  await Promise.all([page.waitForURL(`${emsUrl}/dispatch`), page.click('button[type=submit]')]);
}

/** A registry hospital's staff, signed in on the bureau's ems in a context of their own. */
export async function hospitalLogin(browser, emsUrl, hospital) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'ja-JP' });
  const page = await context.newPage();
  await page.goto(`${emsUrl}/login`);
  await page.fill('#bureau', DEMO.bureau);
  await page.fill('#login', `er-${hospital}`);
  await page.fill('#password', 'er-2026-demo');
  await Promise.all([page.waitForURL(`${emsUrl}/hospital`), page.click('button[type=submit]')]);
  return page;
}

let incidentSeq = 0;
/** Creates an incident on the dispatcher's board; returns its id and the unique location. */
export async function createIncident(page, emsUrl, { team, category = 'chest_pain', note = '胸痛の訴え、意識清明' }) {
  incidentSeq += 1;
  const location = `川崎市中原区小杉町3-${600 + incidentSeq}-${Date.now() % 100000}`;
  await page.goto(`${emsUrl}/dispatch`);
  await page.fill('#location', location);
  await page.selectOption('#category', category);
  await page.fill('#note', note);
  await page.check('#card_prep');
  if (team) await page.selectOption('#team', { label: (await teamOption(page, team)) });
  await Promise.all([page.waitForURL(`${emsUrl}/dispatch`), page.click('#create')]);
  const row = page.locator('tr[data-incident]', { hasText: location });
  await row.waitFor();
  const id = Number(await row.getAttribute('data-incident'));
  return { id, location };
}

async function teamOption(page, team) {
  const labels = await page.locator('#team option').allTextContents();
  const found = labels.find((l) => l.trim().endsWith(` ${team}`));
  if (!found) throw new Error(`no team ${team} among ${labels.length} options`);
  return found.trim();
}

export async function crewSignIn(page, terminalUrl, login) {
  if (!page.url().startsWith(terminalUrl)) await page.goto(`${terminalUrl}/`);
  await page.fill('#login', login);
  await page.fill('#password', DEMO.crewPassword);
  await page.click('#sign-in');
  await page.locator('#link').waitFor();
}

/** Places a deck card on a terminal's emulated reader through the demo panel. */
export async function placeCard(panel, terminalUrl, id) {
  await panel.goto(`${terminalUrl}/demo`);
  await Promise.all([panel.waitForURL(`${terminalUrl}/demo`), panel.click(`#place-${id}`)]);
}

export async function removeCard(panel, terminalUrl) {
  await panel.goto(`${terminalUrl}/demo`);
  await Promise.all([panel.waitForURL(`${terminalUrl}/demo`), panel.click('#remove')]);
}

/** Counts the crew's taps on the terminal. */
export class Taps {
  constructor(page) { this.page = page; this.count = 0; }
  async tap(selector) {
    this.count += 1;
    await this.page.click(selector);
  }
}

/** The rows of an incident's timeline on the dispatcher's page. */
export async function timeline(page, emsUrl, id) {
  await page.goto(`${emsUrl}/dispatch/incidents/${id}`);
  return page.locator('tbody tr').allTextContents();
}

/**
 * A demo on the test ports, seeded by a first run that stops (a new user's first run) and then
 * serving, with the desk signed in as the dispatcher and 中原救急1's tablet signed in and on
 * standby: { dataDir, browser, desk, crew, panel }.
 */
export async function demoWithTablet(name) {
  const dataDir = seededDataDir();
  await runToCompletion(`${name}-seed`, [...demoCommand(dataDir), '--exit-after-samples']);
  start(name, demoCommand(dataDir));
  await waitForHttp(`${httpsUrl(PORTS.ems)}/healthz`);
  await waitForHttp(`${url(PORTS.terminal)}/healthz`);
  const browser = await launchBrowser();
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'ja-JP' });
  const desk = await context.newPage();
  // The tablet's window opens the terminal's one-time launch URL; the demo panel is a page of
  // the same window (it stands for the tablet's card reader).
  const { page: crew, panel } = await openTablet(browser, join(dataDir, 'terminal.launch'),
    { viewport: { width: 1180, height: 820 }, hasTouch: true });
  await dispatcherLogin(desk, httpsUrl(PORTS.ems));
  await crewSignIn(crew, url(PORTS.terminal), DEMO.crew['中原救急1']);
  await crew.locator('#standby').waitFor();
  return { dataDir, browser, desk, crew, panel };
}
