// Real-browser run: headless Chromium driven by playwright-core.
//   peers/browser-idp   the IdP's login page renders (screenshot)
//   gate/browser        Traefik door: app → IdP login → upstream page as alice
//                       → logout → IdP login form again (screenshots)
//   ops/pages           the gate's own pages as a person sees them: 403 at the
//                       address asked for (after the login of a refused
//                       user), login failed, signed out, front-channel; each
//                       styled under its own CSP, no violation (page-*.png)
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

async function gatePages(context) {
  const ops = cfg.ops;
  return withPage(context, async (page, log) => {
    const violations = [];
    page.on('console', (m) => { if (/Content Security Policy|Refused to/i.test(m.text())) violations.push(m.text()); });
    const check = async (what, status, resp, texts, shot) => {
      if (resp?.status() !== status) throw new Error(`${what}: status ${resp?.status()} at ${page.url()}, expected ${status}`);
      const body = await page.locator('body').innerText();
      for (const t of texts) if (!body.includes(t)) throw new Error(`${what}: page lacks "${t}": ${body.slice(0, 200)}`);
      // The page's own <style> applied: its CSP allows it by hash.
      const radius = await page.evaluate(() => getComputedStyle(document.querySelector('main')).borderTopLeftRadius);
      if (radius !== '12px') throw new Error(`${what}: the page's style did not apply (border radius ${radius})`);
      if (violations.length) throw new Error(`${what}: CSP violation: ${violations[0]}`);
      await page.screenshot({ path: path.join(art, shot) });
    };

    // A refused user: login at the IdP, then back at the address asked for, refused there.
    const target = `${ops.origin}/app/reports?year=2026`;
    await page.goto(target);
    let landed;
    if (page.url().startsWith(cfg.idp)) {
      await page.locator('#login-form').waitFor();
      await page.fill('#username', cfg.account.username);
      await page.fill('#password', cfg.account.password);
      [landed] = await Promise.all([
        page.waitForResponse((r) => r.url() === target && r.request().resourceType() === 'document', { timeout: 20000 }),
        page.click('#submit'),
      ]);
    } else {
      throw new Error(`the ops gate did not send the browser to the IdP: ${page.url()}`);
    }
    await page.waitForLoadState();
    if (page.url() !== target) throw new Error(`403 shown at ${page.url()}, not at ${target}`);
    await check('403', 403, landed, [cfg.account.email, 'Sign in as someone else', 'Sign out', 'Request ID'], 'page-403.png');

    const failed = await page.goto(`${ops.origin}${cfg.paths.callback}?error=access_denied&error_description=Call+this+number`);
    await check('login failed', 400, failed, ['the sign-in was not completed', 'Sign in again'], 'page-login-failed.png');

    const out = await page.goto(`${ops.origin}/oauth2/sign_out`);
    await check('signed out', 200, out, ['You are signed out'], 'page-logged-out.png');

    const fc = await page.goto(`${ops.origin}/oauth2/frontchannel-logout?iss=${encodeURIComponent(cfg.idp)}&sid=unknown`);
    await check('front-channel', 200, fc, ['You are signed out'], 'page-frontchannel.png');
    return `403 at ${new URL(target).pathname} naming ${cfg.account.email}, login failed, signed out, front-channel: styled, no CSP violation (page-*.png)`;
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
  if (cfg.gates.ops !== 'ok') {
    record('ops', 'pages', 'chromium', 'fail', `ops gate not available: ${cfg.gates.ops}`);
  } else {
    try {
      record('ops', 'pages', 'chromium', 'pass', await gatePages(context));
    } catch (err) {
      record('ops', 'pages', 'chromium', 'fail', err.message.split('\n')[0], err.log);
    }
  }
} catch (err) {
  record('peers', 'browser-launch', 'chromium', 'fail', err.message.split('\n')[0]);
} finally {
  if (context) await context.close().catch(() => {});
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
fs.writeFileSync(outFile, JSON.stringify(results, null, 2));
