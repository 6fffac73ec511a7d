// Real-browser run: headless Chromium driven by playwright-core.
//   peers/browser-idp   the IdP's login page renders (screenshot)
//   gate/browser        Traefik door: app → IdP login → upstream page as alice
//                       → logout → IdP login form again (screenshots)
// Results are appended as JSON to E2E_RESULTS.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { chromium } from 'playwright-core';

const cfg = JSON.parse(fs.readFileSync(process.env.E2E_CONFIG, 'utf8'));
const art = process.env.E2E_ARTIFACTS;
const outFile = process.env.E2E_RESULTS;
const doorName = process.env.E2E_BROWSER_DOOR || 'traefik';
const results = [];

const FLAGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  // Nothing but loopback: every name except localhost fails to resolve.
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
];

function record(group, scenario, door, status, detail, log = []) {
  results.push({ group, scenario, door, status, detail, notes: [], trace: log.length ? log.join('\n') : undefined });
  process.stdout.write(`  ${status === 'pass' ? 'pass' : 'FAIL'}  ${group}/${scenario} [${door}] ${detail}\n`);
}

async function withPage(context, fn) {
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const log = [];
  page.on('response', (r) => {
    const loc = r.headers().location;
    if (r.request().resourceType() === 'document') log.push(`${r.request().method()} ${r.url()} → ${r.status()}${loc ? ` Location: ${loc}` : ''}`);
  });
  page.on('requestfailed', (r) => log.push(`FAILED ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  try {
    return await fn(page, log);
  } catch (err) {
    err.log = log;
    try { await page.screenshot({ path: path.join(art, 'browser-failure.png'), fullPage: true }); } catch { /* page gone */ }
    throw err;
  } finally {
    await page.close().catch(() => {});
  }
}

async function idpPage(context) {
  const u = new URL(`${cfg.idp}/auth`);
  u.search = new URLSearchParams({
    client_id: cfg.rp.clientId, response_type: 'code', scope: 'openid email', redirect_uri: cfg.rp.redirectUri,
    state: crypto.randomBytes(8).toString('hex'), code_challenge: crypto.randomBytes(32).toString('base64url'), code_challenge_method: 'S256',
  }).toString();
  await withPage(context, async (page) => {
    await page.goto(u.toString());
    await page.locator('#login-form').waitFor();
    await page.screenshot({ path: path.join(art, 'idp-login.png') });
  });
  return 'login form rendered (idp-login.png)';
}

async function gateLogin(context, door) {
  return withPage(context, async (page, log) => {
    const target = `${door.origin}/app/browser`;
    await page.goto(target);
    await page.locator('#login-form').waitFor();
    if (!page.url().startsWith(cfg.idp)) throw new Error(`login form not on the IdP: ${page.url()}`);
    await page.screenshot({ path: path.join(art, 'browser-1-idp-login.png') });

    await page.fill('#username', cfg.account.username);
    await page.fill('#password', cfg.account.password);
    await Promise.all([page.waitForURL(target, { timeout: 20000 }), page.click('#submit')]);
    const who = (await page.locator('#who').textContent({ timeout: 5000 })) || '';
    if (!who.includes(cfg.account.email)) throw new Error(`upstream page greets "${who}", expected ${cfg.account.email}`);
    await page.screenshot({ path: path.join(art, 'browser-2-upstream.png') });
    const cookies = (await context.cookies(door.origin)).filter((c) => c.name.startsWith('_oidcgate_')).map((c) => `${c.name}(${c.sameSite}${c.httpOnly ? ',HttpOnly' : ''})`);

    await page.goto(`${door.origin}${cfg.paths.logout}`);
    await page.waitForURL((u) => u.toString().startsWith(`${door.origin}${cfg.paths.postLogout}`), { timeout: 20000 });
    await page.screenshot({ path: path.join(art, 'browser-3-logged-out.png') });
    const left = (await context.cookies(door.origin)).filter((c) => /^_oidcgate_s_\d+$/.test(c.name));
    if (left.length) throw new Error(`session cookies left after logout: ${left.map((c) => c.name).join(', ')}`);

    await page.goto(target);
    await page.locator('#login-form').waitFor();
    if (!page.url().startsWith(cfg.idp)) throw new Error('after logout the app did not send the browser to the IdP login form');
    return `login → upstream as ${cfg.account.email} → logout → IdP form again; cookies ${cookies.join(' ')}`;
  });
}

let context;
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'oidcgate-e2e-chromium-'));
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    headless: true,
    args: FLAGS,
    timeout: 30000,
    viewport: { width: 900, height: 640 },
  });
  try {
    record('peers', 'browser-idp', 'idp', 'pass', await idpPage(context));
  } catch (err) {
    record('peers', 'browser-idp', 'idp', 'fail', err.message, err.log);
  }
  const door = cfg.doors.find((d) => d.name === doorName);
  if (cfg.gates[door.gate] !== 'ok') {
    record('gate', 'browser', door.name, 'fail', `gateway not available: ${cfg.gates[door.gate]}`);
  } else {
    try {
      record('gate', 'browser', door.name, 'pass', await gateLogin(context, door));
    } catch (err) {
      record('gate', 'browser', door.name, 'fail', err.message.split('\n')[0], err.log);
    }
  }
} catch (err) {
  record('peers', 'browser-launch', 'chromium', 'fail', err.message.split('\n')[0]);
} finally {
  if (context) await context.close().catch(() => {});
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
fs.writeFileSync(outFile, JSON.stringify(results, null, 2));
