// Scripted scenarios. Part one checks the peers by themselves (the IdP with a
// plain relying party, each proxy routing to the upstream); part two drives
// logins through oidcgate behind every door. Results go to E2E_RESULTS as JSON.
//
// Input (environment): E2E_CONFIG, a JSON file written by ./run:
//   { idp, echo, doors: [{ name, origin, noauth, kind, gate }], identityHeaders, gates: { name: "ok" | reason },
//     rp: { clientId, secret, redirectUri }, m2m: { clientId, secret, audience },
//     account: { username, password, email, group }, paths: {...}, accessTokenTTL,
//     refresh, refreshBurst: { door, origin, gate, clientId, ttl, requests },
//     dcr: { gate, origin, pid, bin, config, log, credentialsFile, port },
//     resource: { gate, origin, clientId, audience, ttl } }

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import {
  CookieJar, NAV_HEADERS, XHR_HEADERS, navigate, request, parseForm, submitForm, echoOf, getJSON, renderTrace, summarize, until,
} from './http.mjs';

const cfg = JSON.parse(fs.readFileSync(process.env.E2E_CONFIG, 'utf8'));
const out = process.env.E2E_RESULTS;
const only = (process.env.E2E_ONLY || '').split(',').filter(Boolean);
const results = [];
const IDENTITY = ['x-forwarded-user', 'x-auth-request-user', 'x-auth-request-email', 'x-user-groups', 'x-user-roles'];
const GATE_COOKIE = /^_oidcgate_/;

class Failure extends Error {
  constructor(message, trace) {
    super(message);
    this.trace = trace;
  }
}

function ensure(cond, message, trace) {
  if (!cond) throw new Failure(message, trace);
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Failure(`${what}: no result within ${ms / 1000}s`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

async function scenario(group, name, door, fn) {
  if (only.length && !only.includes(name) && !only.includes(door)) return null;
  const t = { trace: [], notes: [] };
  const started = Date.now();
  let value = null;
  try {
    value = await withTimeout(fn(t), 60000, name);
    t.notes = [...new Set(t.notes)];
    results.push({ group, scenario: name, door, status: 'pass', ms: Date.now() - started, detail: value?.detail || '', notes: t.notes });
    process.stdout.write(`  pass  ${group}/${name} [${door}] ${value?.detail || ''}\n`);
  } catch (err) {
    const trace = renderTrace(err.trace || t.trace);
    hints(t, err.trace || t.trace);
    t.notes = [...new Set(t.notes)];
    results.push({ group, scenario: name, door, status: 'fail', ms: Date.now() - started, detail: err.message, notes: t.notes, trace });
    process.stdout.write(`  FAIL  ${group}/${name} [${door}] ${err.message}\n`);
    value = null;
  }
  for (const n of t.notes) process.stdout.write(`        note: ${n}\n`);
  return value;
}

// Known interop pitfalls, recognized in a failed exchange.
function hints(t, trace) {
  for (const { req, res } of trace || []) {
    const loc = res?.headers?.find((_, i, a) => i % 2 === 1 && /^location$/i.test(a[i - 1]));
    if (!loc) continue;
    for (const port of cfg.gatePorts || []) {
      if (loc.startsWith(`http://127.0.0.1:${port}/`) && !req.url.startsWith(`http://127.0.0.1:${port}/`)) {
        t.notes.push(`a Location points at the gate's own listener (${loc.slice(0, 60)}…): Traefik resolves a relative Location from ForwardAuth against the ForwardAuth address, so the gate must answer with absolute URLs built from X-Forwarded-Proto/-Host`);
      }
    }
    if (/\{http\.reverse_proxy\.header\./.test(res.bodyStart || '')) {
      t.notes.push('Caddy 2.6 copy_headers set a header the gate did not send to its placeholder text');
    }
  }
}

function skip(group, name, door, why) {
  if (only.length && !only.includes(name) && !only.includes(door)) return;
  results.push({ group, scenario: name, door, status: 'fail', ms: 0, detail: why, notes: [] });
  process.stdout.write(`  FAIL  ${group}/${name} [${door}] ${why}\n`);
}

// ---- JOSE helpers for the IdP self-check --------------------------------

const b64u = (buf) => Buffer.from(buf).toString('base64url');

function pkce() {
  const verifier = b64u(crypto.randomBytes(32));
  const challenge = b64u(crypto.createHash('sha256').update(verifier).digest());
  return { verifier, challenge };
}

let jwksCache = null;
async function verifyJwt(token, discovery) {
  const parts = String(token).split('.');
  ensure(parts.length === 3, `not a JWT: ${String(token).slice(0, 20)}…`);
  const header = JSON.parse(Buffer.from(parts[0], 'base64url'));
  const payload = JSON.parse(Buffer.from(parts[1], 'base64url'));
  if (!jwksCache) jwksCache = (await getJSON(discovery.jwks_uri)).json;
  const jwk = jwksCache.keys.find((k) => k.kid === header.kid);
  ensure(jwk, `no JWKS key for kid ${header.kid}`);
  ensure(header.alg === 'RS256', `unexpected alg ${header.alg}`);
  const ok = crypto.verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), crypto.createPublicKey({ key: jwk, format: 'jwk' }), Buffer.from(parts[2], 'base64url'));
  ensure(ok, 'JWT signature does not verify against the JWKS');
  return { header, payload };
}

function basic(id, secret) {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

async function tokenRequest(discovery, client, params, t) {
  const body = new URLSearchParams(params).toString();
  const res = await request(discovery.token_endpoint, {
    method: 'POST', body, headers: { authorization: basic(client.clientId, client.secret), accept: 'application/json' },
  });
  t.trace.push({ req: { method: 'POST', url: discovery.token_endpoint, headers: { 'grant_type': params.grant_type }, body: '' }, res: { status: res.status, headers: [], bodyStart: res.body.slice(0, 300) } });
  let json = null;
  try { json = JSON.parse(res.body); } catch { /* error page */ }
  return { status: res.status, json };
}

async function counters() {
  return (await getJSON(`${cfg.idp}/__test/counters`)).json.counters;
}

// ---- peer self-checks ---------------------------------------------------

async function idpPlainLogin(t, discovery) {
  const { rp, account } = cfg;
  const jar = new CookieJar();
  const before = await counters();
  const authorize = (state, nonce, challenge) => {
    const u = new URL(discovery.authorization_endpoint);
    u.search = new URLSearchParams({
      client_id: rp.clientId, response_type: 'code', scope: 'openid email profile groups',
      redirect_uri: rp.redirectUri, state, nonce, code_challenge: challenge, code_challenge_method: 'S256',
    }).toString();
    return u.toString();
  };
  const stop = (u) => u.startsWith(rp.redirectUri);

  // 1. login form, submit, code back to the RP.
  const p = pkce();
  const state = b64u(crypto.randomBytes(12));
  const nonce = b64u(crypto.randomBytes(12));
  let nav = await navigate(authorize(state, nonce, p.challenge), { jar, stop, trace: t.trace });
  ensure(nav.res?.status === 200, `authorization endpoint did not show a page (status ${nav.res?.status})`, t.trace);
  const form = parseForm(nav.res.body, nav.url, 'login-form');
  ensure(form, 'IdP login form not found', t.trace);
  nav = await submitForm(form, nav.url, { username: account.username, password: account.password }, { jar, stop, trace: t.trace });
  ensure(nav.stoppedAt, 'login did not come back to the redirect_uri', t.trace);
  const cb = new URL(nav.stoppedAt);
  ensure(cb.searchParams.get('state') === state, 'state not echoed', t.trace);
  const code = cb.searchParams.get('code');
  ensure(code, `no code in callback: ${nav.stoppedAt}`, t.trace);

  // 2. code + PKCE verifier for tokens.
  const tok = await tokenRequest(discovery, rp, { grant_type: 'authorization_code', code, redirect_uri: rp.redirectUri, code_verifier: p.verifier }, t);
  ensure(tok.status === 200 && tok.json?.id_token, `token endpoint ${tok.status}: ${JSON.stringify(tok.json)}`, t.trace);
  ensure(tok.json.refresh_token, 'no refresh_token issued', t.trace);
  const { payload: id } = await verifyJwt(tok.json.id_token, discovery);
  ensure(id.iss === cfg.idp && id.aud === rp.clientId && id.nonce === nonce, 'ID token iss/aud/nonce wrong', t.trace);
  ensure(id.email === account.email, `ID token email ${id.email}`, t.trace);
  ensure(Array.isArray(id.groups) && id.groups.includes(account.group), `ID token groups ${JSON.stringify(id.groups)}`, t.trace);
  ensure(tok.json.expires_in <= cfg.accessTokenTTL, `access token TTL ${tok.json.expires_in} > ${cfg.accessTokenTTL}`);

  const ui = await getJSON(discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${tok.json.access_token}`, accept: 'application/json' } });
  ensure(ui.res.status === 200 && ui.json.email === account.email, `userinfo ${ui.res.status}`, t.trace);

  // 3. refresh with rotation; replaying a rotated token revokes the grant.
  const r1 = await tokenRequest(discovery, rp, { grant_type: 'refresh_token', refresh_token: tok.json.refresh_token }, t);
  ensure(r1.status === 200 && r1.json.refresh_token && r1.json.refresh_token !== tok.json.refresh_token, `refresh did not rotate (${r1.status})`, t.trace);
  const replay = await tokenRequest(discovery, rp, { grant_type: 'refresh_token', refresh_token: tok.json.refresh_token }, t);
  ensure(replay.status === 400 && replay.json?.error === 'invalid_grant', `replayed refresh token answered ${replay.status}`, t.trace);
  const afterRevoke = await tokenRequest(discovery, rp, { grant_type: 'refresh_token', refresh_token: r1.json.refresh_token }, t);
  ensure(afterRevoke.status === 400, `grant not revoked after replay (${afterRevoke.status})`, t.trace);

  // 4. single sign-on: a second authorization needs no form.
  const p2 = pkce();
  nav = await navigate(authorize('s2', 'n2', p2.challenge), { jar, stop, trace: t.trace });
  ensure(nav.stoppedAt, 'second authorization was not silent (IdP session missing)', t.trace);
  const code2 = new URL(nav.stoppedAt).searchParams.get('code');
  const tok2 = await tokenRequest(discovery, rp, { grant_type: 'authorization_code', code: code2, redirect_uri: rp.redirectUri, code_verifier: p2.verifier }, t);
  ensure(tok2.status === 200, `second code exchange ${tok2.status}`, t.trace);

  // 5. RP-initiated logout, auto-submitted; then the form is back.
  const end = new URL(discovery.end_session_endpoint);
  end.search = new URLSearchParams({ id_token_hint: tok2.json.id_token, post_logout_redirect_uri: rp.redirectUri, state: 'bye' }).toString();
  nav = await navigate(end.toString(), { jar, stop, trace: t.trace });
  ensure(nav.res?.status === 200, 'end_session did not show the logout page', t.trace);
  const lf = parseForm(nav.res.body, nav.url, 'op.logoutForm');
  ensure(lf && lf.fields.logout === 'yes', 'logout form without logout=yes', t.trace);
  nav = await submitForm(lf, nav.url, {}, { jar, stop, trace: t.trace });
  ensure(nav.stoppedAt && new URL(nav.stoppedAt).searchParams.get('state') === 'bye', 'logout did not return to post_logout_redirect_uri', t.trace);
  nav = await navigate(authorize('s3', 'n3', pkce().challenge), { jar, stop, trace: t.trace });
  ensure(nav.res?.status === 200 && parseForm(nav.res.body, nav.url, 'login-form'), 'after logout the IdP did not ask to log in again', t.trace);

  const after = await counters();
  ensure(after['grant.success'] - before['grant.success'] >= 3, 'grant.success counter did not move', t.trace);
  ensure(after['end_session.success'] > before['end_session.success'], 'end_session.success counter did not move', t.trace);
  return { detail: 'login form, code+PKCE, ID token claims, userinfo, refresh rotation + replay revocation, SSO, logout' };
}

async function idpClientCredentials(t, discovery) {
  const { m2m } = cfg;
  const tok = await tokenRequest(discovery, m2m, { grant_type: 'client_credentials', scope: 'api:read' }, t);
  ensure(tok.status === 200 && tok.json?.access_token, `client_credentials ${tok.status}: ${JSON.stringify(tok.json)}`, t.trace);
  const { header, payload } = await verifyJwt(tok.json.access_token, discovery);
  ensure(header.typ === 'at+jwt', `typ ${header.typ}`);
  ensure(payload.aud === m2m.audience, `aud ${JSON.stringify(payload.aud)}`);
  ensure(payload.client_id === m2m.clientId && payload.scope === 'api:read', `client_id/scope ${payload.client_id}/${payload.scope}`);
  return { detail: `JWT at+jwt aud=${payload.aud} ttl=${payload.exp - payload.iat}s` };
}

// Machine-to-machine: a client_credentials JWT from the provider passes the
// gate (bearer path) and reaches the upstream as its client; a forged copy
// (signature bytes changed) is refused with an RFC 6750 challenge.
async function bearer(t, door, discovery) {
  const { m2m } = cfg;
  const tok = await tokenRequest(discovery, m2m, { grant_type: 'client_credentials', scope: 'api:read' }, t);
  ensure(tok.status === 200 && tok.json?.access_token, `client_credentials ${tok.status}`, t.trace);
  const token = tok.json.access_token;
  const headers = { ...XHR_HEADERS, Authorization: `Bearer ${token}` };
  const ok = await navigate(`${door.origin}/app/api/m2m`, { jar: new CookieJar(), headers, follow: false, trace: t.trace });
  const echo = echoOf(ok.res);
  ensure(echo, `valid client_credentials token answered ${ok.res.status}, not the upstream`, t.trace);
  const user = hdr(echo, 'x-forwarded-user');
  ensure(user.includes(m2m.clientId), `upstream X-Forwarded-User ${JSON.stringify(user)}, expected ${m2m.clientId}`, t.trace);
  const parts = token.split('.');
  const sig = parts[2];
  const flipped = (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
  const forged = [parts[0], parts[1], flipped].join('.');
  const before = (await getJSON(`${cfg.echo}/__echo/stats`)).json.total;
  const bad = await navigate(`${door.origin}/app/api/m2m`, {
    jar: new CookieJar(), headers: { ...XHR_HEADERS, Authorization: `Bearer ${forged}` }, follow: false, trace: t.trace,
  });
  ensure(bad.res.status === 401, `forged token answered ${bad.res.status}, expected 401`, t.trace);
  const challenge = bad.res.headers['www-authenticate'] || '';
  ensure(/^Bearer /.test(challenge) && challenge.includes('invalid_token'), `challenge ${JSON.stringify(challenge)}`, t.trace);
  const after = (await getJSON(`${cfg.echo}/__echo/stats`)).json.total;
  ensure(after === before, 'the upstream was reached with a forged token', t.trace);
  return { detail: `valid JWT → 200 as ${m2m.clientId}; forged → 401 invalid_token` };
}

async function proxyRouting(t, door) {
  const nav = await navigate(`${door.noauth || door.origin}/__noauth/ping?door=${door.name}`, { headers: XHR_HEADERS, follow: false, trace: t.trace });
  const echo = echoOf(nav.res);
  ensure(echo && echo.url.startsWith('/__noauth/ping'), `no upstream answer (status ${nav.res.status})`, t.trace);
  return { detail: `${door.name} → upstream 200` };
}

// ---- gateway scenarios --------------------------------------------------

const idpOrigin = () => new URL(cfg.idp).origin;
const toIdp = (u) => u.startsWith(idpOrigin());
const hdr = (echo, name) => echo?.byName?.[name] || [];

function gateCookies(jar) {
  return jar.named('localhost', GATE_COOKIE);
}

function noteCookieAttributes(t, setCookies) {
  for (const line of setCookies) {
    const name = line.split('=')[0];
    if (!GATE_COOKIE.test(name) || /max-age=0|expires=thu, 01 jan 1970/i.test(line)) continue;
    const lower = line.toLowerCase();
    const missing = ['httponly', 'samesite', 'path=/'].filter((a) => !lower.includes(a));
    if (missing.length) t.notes.push(`cookie ${name} lacks ${missing.join(', ')}`);
  }
}

// Browser navigation without a session: a 302 whose Location is the IdP's
// authorization endpoint (after same-origin hops, e.g. nginx's /oauth2/start).
async function navRedirect(t, door, discovery) {
  const jar = new CookieJar();
  const nav = await navigate(`${door.origin}/app/page?q=1`, { jar, stop: toIdp, trace: t.trace });
  ensure(nav.stoppedAt, `navigation did not lead to the IdP (last status ${nav.res?.status})`, t.trace);
  const last = t.trace[t.trace.length - 1];
  ensure(last.res.status === 302, `redirect to the IdP used status ${last.res.status}, expected 302`, t.trace);
  const loc = new URL(nav.stoppedAt);
  ensure(`${loc.origin}${loc.pathname}` === discovery.authorization_endpoint, `Location is not the authorization endpoint: ${nav.stoppedAt}`, t.trace);
  const q = loc.searchParams;
  const problems = [];
  if (q.get('client_id') !== 'oidcgate') problems.push(`client_id=${q.get('client_id')}`);
  if (q.get('response_type') !== 'code') problems.push(`response_type=${q.get('response_type')}`);
  if (q.get('redirect_uri') !== `${door.origin}${cfg.paths.callback}`) problems.push(`redirect_uri=${q.get('redirect_uri')} (want ${door.origin}${cfg.paths.callback})`);
  if (!(q.get('scope') || '').split(' ').includes('openid')) problems.push(`scope=${q.get('scope')}`);
  if (!q.get('state')) problems.push('no state');
  if (q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge')) problems.push('no S256 PKCE challenge');
  ensure(!problems.length, `authorization request: ${problems.join('; ')}`, t.trace);
  if (!gateCookies(jar).length) t.notes.push('no _oidcgate_ cookie set with the redirect (login state kept elsewhere?)');
  return { detail: `${t.trace.length} hop(s) → IdP` };
}

async function xhr401(t, door) {
  const before = (await getJSON(`${cfg.echo}/__echo/stats`)).json.total;
  const nav = await navigate(`${door.origin}/app/api/items`, { jar: new CookieJar(), headers: XHR_HEADERS, follow: false, trace: t.trace });
  ensure(nav.res.status === 401, `XHR without session answered ${nav.res.status}, expected 401`, t.trace);
  const loc = nav.res.headers.location;
  ensure(!loc, `401 carries a Location (${loc})`, t.trace);
  const after = (await getJSON(`${cfg.echo}/__echo/stats`)).json.total;
  ensure(after === before, 'the upstream was reached without a session', t.trace);
  return { detail: '401' };
}

async function excluded(t, door) {
  const before = (await getJSON(`${cfg.echo}/__echo/stats`)).json.spoofed.length;
  const nav = await navigate(`${door.origin}${cfg.paths.excluded}/info`, {
    jar: new CookieJar(), headers: { ...NAV_HEADERS, 'X-Forwarded-User': 'mallory' }, follow: false, trace: t.trace,
  });
  const echo = echoOf(nav.res);
  ensure(echo, `excluded URL answered ${nav.res.status}, not the upstream`, t.trace);
  const given = IDENTITY.filter((h) => hdr(echo, h).some((v) => v !== ''));
  ensure(!given.length, `upstream got identity headers without a session: ${given.map((h) => `${h}=${hdr(echo, h)}`).join(' ')}`, t.trace);
  const empty = IDENTITY.filter((h) => hdr(echo, h).length);
  if (empty.length) t.notes.push(`the upstream gets empty ${empty.join(', ')} on an excluded URL`);
  const leaked = (await getJSON(`${cfg.echo}/__echo/stats`)).json.spoofed.slice(before);
  ensure(!leaked.length, `a client-sent X-Forwarded-User reached the upstream on an excluded URL: ${JSON.stringify(leaked.map((l) => l.headers))}`, t.trace);
  return { detail: '200 from upstream, no identity (client X-Forwarded-User dropped)' };
}

// Full scripted login: app → IdP form → callback → back on the app page.
async function loginThrough(t, door, jar, path) {
  const target = `${door.origin}${path}`;
  let nav = await navigate(target, { jar, trace: t.trace });
  ensure(nav.res.status === 200 && toIdp(nav.url), `expected the IdP login page, got ${nav.res.status} at ${nav.url}`, t.trace);
  const form = parseForm(nav.res.body, nav.url, 'login-form');
  ensure(form, `no login form at ${nav.url}`, t.trace);
  const c0 = await counters();
  nav = await submitForm(form, nav.url, { username: cfg.account.username, password: cfg.account.password }, { jar, trace: t.trace });
  const c1 = await counters();
  ensure(nav.url === target, `login ended at ${nav.url} (status ${nav.res.status}), expected ${target}`, t.trace);
  const echo = echoOf(nav.res);
  ensure(echo, `landing page is not the upstream (status ${nav.res.status})`, t.trace);
  ensure(c1['grant.success'] > c0['grant.success'], 'the IdP saw no successful code exchange', t.trace);
  for (const h of t.trace) noteCookieAttributes(t, h.res.headers.filter((_, i, a) => i % 2 === 1 && /set-cookie/i.test(a[i - 1])));
  return echo;
}

async function login(t, door, state) {
  const jar = new CookieJar();
  const echo = await loginThrough(t, door, jar, '/app/hello?x=1');
  const user = hdr(echo, 'x-forwarded-user');
  ensure(user.length === 1 && user[0] === cfg.account.email, `upstream X-Forwarded-User = ${JSON.stringify(user)}, expected ["${cfg.account.email}"]`, t.trace);
  const seen = IDENTITY.map((h) => `${h}=${hdr(echo, h).join('|') || '-'}`).join(' ');
  if (!hdr(echo, 'x-user-groups').join(',').includes(cfg.account.group) && !hdr(echo, 'x-auth-request-groups').join(',').includes(cfg.account.group)) {
    t.notes.push(`group "${cfg.account.group}" not in the upstream's group headers (${seen})`);
  }
  state.jar = jar;
  state.loginAt = Date.now();
  return { detail: `${gateCookies(jar).length} gate cookie(s); ${seen}` };
}

async function spoof(t, door, state) {
  ensure(state.jar, 'no session (login failed)');
  // Every identity header the gate knows (policy::IDENTITY_HEADERS, from ./run).
  const spoofHeaders = {
    'X-Forwarded-User': 'mallory',
    'x-auth-request-user': 'mallory',
    'X-Auth-Request-Email': 'mallory@evil.example',
    'X-User-Groups': 'mallory-admins',
    'X-User-Roles': 'mallory-admin',
  };
  for (const h of cfg.identityHeaders || []) if (!Object.keys(spoofHeaders).some((k) => k.toLowerCase() === h)) spoofHeaders[h] = `mallory-${h}`;
  // Spellings some frameworks read as the same header (CGI/WSGI map "_" and
  // "-" alike) and that proxies do not overwrite.
  const underscored = { X_Forwarded_User: 'mallory', 'X-Forwarded_User': 'mallory', 'x_auth_request_email': 'mallory@evil.example' };
  const before = (await getJSON(`${cfg.echo}/__echo/stats`)).json.spoofed.length;

  // With a session: the gate's values replace the client's.
  let nav = await navigate(`${door.origin}/app/whoami`, { jar: state.jar, headers: { ...XHR_HEADERS, ...spoofHeaders }, follow: false, trace: t.trace });
  const echo = echoOf(nav.res);
  ensure(echo, `with session and spoofed headers: status ${nav.res.status}, not the upstream`, t.trace);
  const user = hdr(echo, 'x-forwarded-user');
  ensure(user.length === 1 && user[0] === cfg.account.email, `upstream X-Forwarded-User = ${JSON.stringify(user)}`, t.trace);

  // Underscore spellings: dropped or refused, never passed on.
  nav = await navigate(`${door.origin}/app/whoami`, { jar: state.jar, headers: { ...XHR_HEADERS, ...underscored }, follow: false, trace: t.trace });
  const underscoreOutcome = echoOf(nav.res) ? 'dropped' : `refused ${nav.res.status}`;

  // Without a session: nothing reaches the upstream at all.
  nav = await navigate(`${door.origin}/app/whoami`, { jar: new CookieJar(), headers: { ...NAV_HEADERS, ...spoofHeaders }, follow: false, trace: t.trace });
  ensure(!echoOf(nav.res), `without session the spoofed request reached the upstream (status ${nav.res.status})`, t.trace);
  nav = await navigate(`${door.origin}/app/whoami`, { jar: new CookieJar(), headers: { ...XHR_HEADERS, ...spoofHeaders }, follow: false, trace: t.trace });
  ensure(!echoOf(nav.res), `without session the spoofed XHR reached the upstream (status ${nav.res.status})`, t.trace);

  const stats = (await getJSON(`${cfg.echo}/__echo/stats`)).json;
  const leaked = stats.spoofed.slice(before);
  ensure(!leaked.length, `spoofed values reached the upstream: ${JSON.stringify(leaked.map((l) => l.headers))}`, t.trace);
  return { detail: `identity headers replaced; underscore spellings ${underscoreOutcome}` };
}

async function logout(t, door, state, discovery) {
  ensure(state.jar, 'no session (login failed)');
  const jar = state.jar;
  const oldCookies = gateCookies(jar).map((c) => ({ ...c }));
  const c0 = await counters();

  // 1. The gate clears its cookies and sends the browser to end_session.
  let nav = await navigate(`${door.origin}${cfg.paths.logout}`, { jar, stop: toIdp, trace: t.trace });
  ensure(nav.stoppedAt, `logout did not redirect to the IdP (last status ${nav.res?.status})`, t.trace);
  const end = new URL(nav.stoppedAt);
  ensure(`${end.origin}${end.pathname}` === discovery.end_session_endpoint, `logout went to ${end.origin}${end.pathname}, not end_session_endpoint`, t.trace);
  ensure(end.searchParams.get('id_token_hint'), 'no id_token_hint', t.trace);
  const plr = end.searchParams.get('post_logout_redirect_uri');
  ensure(plr === `${door.origin}${cfg.paths.postLogout}`, `post_logout_redirect_uri=${plr}, expected ${door.origin}${cfg.paths.postLogout}`, t.trace);
  const left = gateCookies(jar).filter((c) => /_s_\d+$/.test(c.name));
  ensure(!left.length, `session cookies not cleared: ${left.map((c) => c.name).join(', ')}`, t.trace);

  // 2. The IdP ends its own session and returns to the post-logout page.
  nav = await navigate(nav.stoppedAt, { jar, initiator: `${door.origin}/`, trace: t.trace });
  const lf = parseForm(nav.res.body, nav.url, 'op.logoutForm');
  ensure(nav.res.status === 200 && lf, `IdP logout page missing (status ${nav.res.status} at ${nav.url})`, t.trace);
  nav = await submitForm(lf, nav.url, {}, { jar, trace: t.trace });
  ensure(nav.url.startsWith(`${door.origin}${cfg.paths.postLogout}`) && echoOf(nav.res), `after IdP logout: status ${nav.res.status} at ${nav.url}`, t.trace);
  const c1 = await counters();
  ensure(c1['end_session.success'] > c0['end_session.success'], 'IdP end_session did not complete', t.trace);

  // 3. The app asks for a login again, and the IdP shows its form again.
  const echo = await loginThrough(t, door, jar, '/app/again');
  state.loginAt = Date.now();
  ensure(hdr(echo, 'x-forwarded-user')[0] === cfg.account.email, 're-login did not reach the upstream as alice', t.trace);
  const c2 = await counters();
  ensure(c2['interaction.login_ok'] > c1['interaction.login_ok'], 'no new IdP login happened', t.trace);

  // 4. A copy of the pre-logout cookie is worthless: logout ends the session
  // on the gate, not only in this browser.
  ensure(oldCookies.length, 'no session cookie before logout', t.trace);
  const replayJar = new CookieJar();
  replayJar.cookies = oldCookies;
  const r = await request(`${door.origin}/app/replay`, { jar: replayJar, headers: XHR_HEADERS });
  ensure(!echoOf(r) && r.status === 401, `a pre-logout session cookie replayed after logout got ${r.status}${echoOf(r) ? ' from the upstream' : ''}`, t.trace);
  return { detail: 'cookies cleared, end_session with id_token_hint, IdP form again, re-login ok, old cookie refused' };
}

// Default: one session behind Traefik whose tokens have expired (the gate's
// own client at the IdP issues tokens living rb.ttl seconds, rotates refresh
// tokens and revokes the whole grant when a rotated one is presented again).
// rb.requests concurrent requests with that one cookie must all reach the
// upstream as alice, every answer must carry the refreshed cookie, and the
// IdP's grant log must show exactly one refresh_token grant and no refused one.
async function refreshBurst(t, rb) {
  const door = { name: rb.door, origin: rb.origin };
  const jar = new CookieJar();
  await loginThrough(t, door, jar, '/app/refresh-burst');
  const loginAt = Date.now();
  const grants = async () => {
    const log = (await getJSON(`${cfg.idp}/__test/grants`)).json;
    return log?.[rb.clientId]?.refresh_token || { success: 0, error: 0, reuse: 0, errors: [] };
  };
  const g0 = await grants();

  // Bounded wait until the access token has certainly expired.
  const waitMs = loginAt + (rb.ttl + 1) * 1000 - Date.now();
  if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));

  const jars = Array.from({ length: rb.requests }, () => jar.clone());
  const answers = await Promise.all(jars.map((j, i) => request(`${door.origin}/app/burst/${i}`, { jar: j, headers: XHR_HEADERS, timeoutMs: 30000 })));
  const g1 = await grants();
  const record = (r) => t.trace.push({ req: { method: 'GET', url: r.url, headers: r.requestHeaders }, res: summarize(r) });
  const statuses = {};
  for (const r of answers) statuses[r.status] = (statuses[r.status] || 0) + 1;
  const histogram = Object.entries(statuses).map(([k, v]) => `${v}x ${k}`).join(', ');
  const bad = answers.filter((r) => hdr(echoOf(r), 'x-forwarded-user')[0] !== cfg.account.email);
  bad.slice(0, 3).forEach(record);
  const log = `IdP grant log for ${rb.clientId}: ${g1.success - g0.success} refresh_token grant(s), ${g1.error - g0.error} refused (${g1.reuse - g0.reuse} reuse)${g1.errors.length ? `; last: ${g1.errors.at(-1)}` : ''}`;
  ensure(!statuses[401], `${statuses[401]} of ${rb.requests} answered 401 (${histogram}); ${log}`, t.trace);
  ensure(!bad.length, `${bad.length} of ${rb.requests} did not reach the upstream as alice (${histogram}); ${log}`, t.trace);
  ensure(g1.success - g0.success === 1 && g1.error === g0.error, log, t.trace);
  const without = answers.filter((r) => !r.setCookies.some((c) => /^_oidcgate_s_0=[^;]/.test(c)));
  without.slice(0, 3).forEach(record);
  ensure(!without.length, `${without.length} of ${rb.requests} answers lack the refreshed session cookie`, t.trace);

  // The refreshed cookie is enough for the next request: no further grant.
  const again = await request(`${door.origin}/app/after-burst`, { jar: jars[rb.requests - 1], headers: XHR_HEADERS });
  const g2 = await grants();
  if (!echoOf(again)) record(again);
  ensure(hdr(echoOf(again), 'x-forwarded-user')[0] === cfg.account.email, `request with the refreshed cookie answered ${again.status}`, t.trace);
  ensure(g2.success === g1.success && g2.error === g1.error, 'the refreshed cookie needed another grant', t.trace);
  return { detail: `${rb.requests} concurrent requests after expiry: ${histogram} as alice; ${log}` };
}

// Opt-in (E2E_REFRESH=1): the ID and access tokens have expired; three
// concurrent requests with the same cookies must all pass as alice, the gate
// must refresh without presenting a rotated refresh token twice (the IdP
// revokes the grant on reuse), and the refreshed cookie must reach the client
// so that the next request needs no refresh.
async function refresh(t, door, state) {
  const c0 = await counters();
  const jars = [0, 1, 2].map(() => state.jar.clone());
  const navs = await Promise.all(jars.map((jar) => navigate(`${door.origin}/app/refresh`, { jar, headers: XHR_HEADERS, follow: false, trace: t.trace })));
  const c1 = await counters();
  const statuses = navs.map((n) => n.res.status);
  ensure(navs.every((n) => hdr(echoOf(n.res), 'x-forwarded-user')[0] === cfg.account.email), `concurrent requests after expiry answered ${statuses.join(', ')}`, t.trace);
  ensure(c1['refresh_token.reuse'] === c0['refresh_token.reuse'], `a rotated refresh token was presented again (${c1['refresh_token.reuse'] - c0['refresh_token.reuse']}x): the IdP revoked the grant`, t.trace);
  ensure(c1['grant.success'] > c0['grant.success'], 'no refresh at the IdP although the tokens had expired', t.trace);
  const refreshed = navs.findIndex((n) => n.res.setCookies.some((c) => /^_oidcgate_s_\d+=[^;]/.test(c)));
  if (refreshed < 0 && door.name === 'caddy') t.notes.push("Caddy's forward_auth drops the Set-Cookie of a 2xx auth answer (see docs/proxies.md)");
  ensure(refreshed >= 0, 'no refreshed session cookie reached the client (the next request must refresh again)', t.trace);
  state.jar = jars[refreshed];
  const again = await navigate(`${door.origin}/app/refresh-again`, { jar: state.jar, headers: XHR_HEADERS, follow: false, trace: t.trace });
  const c2 = await counters();
  ensure(hdr(echoOf(again.res), 'x-forwarded-user')[0] === cfg.account.email, `request with the refreshed cookie answered ${again.res.status}`, t.trace);
  ensure(c2['grant.success'] === c1['grant.success'], 'the refreshed cookie needed another refresh', t.trace);
  return { detail: `${c1['grant.success'] - c0['grant.success']} refresh(es) for 3 concurrent requests` };
}

// Client authentication: a gate whose IdP client accepts only one method
// (private_key_jwt with the gate's key, or client_secret_basic with a secret
// that needs form-encoding) logs alice in through Traefik; the IdP's grant log
// must show the code exchange for that client and no refused grant.
async function clientAuthLogin(t, entry) {
  const door = { name: 'traefik', origin: entry.origin };
  const grants = async () => {
    const log = (await getJSON(`${cfg.idp}/__test/grants`)).json;
    return log?.[entry.clientId]?.authorization_code || { success: 0, error: 0, errors: [] };
  };
  const g0 = await grants();
  const jar = new CookieJar();
  const echo = await loginThrough(t, door, jar, '/app/client-auth');
  const g1 = await grants();
  const user = hdr(echo, 'x-forwarded-user');
  ensure(user[0] === cfg.account.email, `upstream X-Forwarded-User = ${JSON.stringify(user)}`, t.trace);
  ensure(g1.success - g0.success === 1 && g1.error === g0.error,
    `IdP grant log for ${entry.clientId}: ${g1.success - g0.success} code exchange(s), ${g1.error - g0.error} refused${g1.errors.length ? `; last: ${g1.errors.at(-1)}` : ''}`, t.trace);
  return { detail: `${entry.clientId} authenticated with ${entry.method}` };
}

// ---- the pasted plugin block --------------------------------------------

// A gate started from e2e/plugin-block.yaml, a Traefik dynamic configuration
// with the traefikoidc middleware block as users have it: the upstream gets
// the rendered header templates, answers carry the block's security headers,
// and the key oidcgate accepts without effect was named in one warning line.
async function pluginBlock(t, entry) {
  const door = { name: entry.door, origin: entry.origin };
  const warned = fs.readFileSync(entry.log, 'utf8').split('\n')
    .filter((l) => /disableReplayDetection/.test(l) && /warn/i.test(l));
  ensure(warned.length === 1, `expected one start-up warning naming disableReplayDetection in ${entry.log}, found ${warned.length}`);

  // Before login: the gate's own answer carries the security headers (through
  // Traefik, ForwardAuth copies a non-2xx answer's headers to the browser).
  const first = await navigate(`${entry.origin}/app/plugin`, { jar: new CookieJar(), follow: false, trace: t.trace });
  ensure(first.res.status === 302, `unauthenticated navigation: ${first.res.status}, expected 302`, t.trace);
  const gateHeaders = securityHeaderProblems(first.res.headers, true);
  ensure(!gateHeaders.length, `the gate's 302: ${gateHeaders.join('; ')}`, t.trace);

  const jar = new CookieJar();
  await loginThrough(t, door, jar, '/app/plugin?x=1');
  // A request on the session made above: the templates render from the
  // sealed session, not only on the login's own request.
  const again = await navigate(`${entry.origin}/app/plugin?y=2`, { jar, headers: { ...NAV_HEADERS, origin: 'https://app.example.com' }, trace: t.trace });
  const echo = echoOf(again.res);
  ensure(echo, `session request answered ${again.res.status}, not by the upstream`, t.trace);
  const one = (name) => {
    const v = hdr(echo, name);
    ensure(v.length === 1, `upstream ${name} = ${JSON.stringify(v)}, expected exactly one value`, t.trace);
    return v[0];
  };
  const want = {
    'x-forwarded-user': cfg.account.email,
    'x-user-email': cfg.account.email,
    'x-user-groups-csv': cfg.account.group,
    'x-user-nickname': 'anonymous',
    'x-user-groups-json': JSON.stringify([cfg.account.group]),
  };
  for (const [name, value] of Object.entries(want)) {
    const got = one(name);
    ensure(got === value, `upstream ${name} = ${JSON.stringify(got)}, expected ${JSON.stringify(value)}`, t.trace);
  }
  const authz = one('authorization');
  ensure(/^Bearer [A-Za-z0-9._~+/=-]{16,}$/.test(authz), `upstream Authorization = ${JSON.stringify(authz.slice(0, 24))}…, expected "Bearer <access token>"`, t.trace);

  if (entry.kind === 'proxy') {
    // (Through ForwardAuth the proxy forwards the browser's own request,
    // cookies included: only the reverse proxy can strip them.)
    ensure(!hdr(echo, 'cookie').join(';').includes('_oidcgate_'), 'the session cookies reached the upstream', t.trace);
    // The upstream's own answer, through the reverse proxy: security headers
    // added, Server and X-Powered-By removed, CORS for an allowed wildcard origin.
    const problems = securityHeaderProblems(again.res.headers);
    for (const h of ['server', 'x-powered-by']) if (again.res.headers[h]) problems.push(`${h}: ${again.res.headers[h]} not removed`);
    const acao = again.res.headers['access-control-allow-origin'];
    if (acao !== 'https://app.example.com') problems.push(`access-control-allow-origin = ${acao}, expected the allowed origin`);
    ensure(!problems.length, `proxied answer: ${problems.join('; ')}`, t.trace);

    // rateLimit: 20 per source (resolved through trustedProxies): a burst of
    // new logins from one public address is cut off with 429 and Retry-After,
    // and another address is not affected.
    const starts = [];
    for (let i = 0; i < 30; i += 1) {
      starts.push(request(`${entry.origin}/oauth2/start?rd=/app/limited`, { headers: { ...NAV_HEADERS, 'x-forwarded-for': '198.51.100.23' } }));
    }
    const answers = await Promise.all(starts);
    const limited = answers.filter((r) => r.status === 429);
    ensure(limited.length >= 5 && limited.length <= 15, `30 logins from one source: ${limited.length} answered 429 (statuses ${[...new Set(answers.map((r) => r.status))]})`);
    ensure(limited.every((r) => Number(r.headers['retry-after']) >= 1), `a 429 without Retry-After: ${JSON.stringify(limited[0].headers)}`);
    const other = await request(`${entry.origin}/oauth2/start?rd=/app/limited`, { headers: { ...NAV_HEADERS, 'x-forwarded-for': '198.51.100.24' } });
    ensure(other.status === 302, `another source was limited too: ${other.status}`);
    return { detail: `templates, security headers, CORS and Server/X-Powered-By removal on the proxied answer; ${limited.length}/30 logins from one source limited (429, Retry-After ${limited[0].headers['retry-after']}s)` };
  }
  return { detail: 'templates rendered into the upstream request through ForwardAuth; security headers on the gate\'s 302' };
}

// What is wrong with the security headers e2e/plugin-block.yaml asks for.
// The gate's own answers keep its stricter fixed headers whatever is
// configured (docs/configuration.md): X-Frame-Options DENY there.
function securityHeaderProblems(h, gateOwn = false) {
  const want = {
    'x-frame-options': gateOwn ? 'DENY' : 'SAMEORIGIN',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'content-security-policy': "default-src 'self'",
    'x-served-by': 'oidcgate-plugin-block',
  };
  const problems = [];
  for (const [name, value] of Object.entries(want)) {
    if (h[name] !== value) problems.push(`${name} = ${JSON.stringify(h[name])}, expected ${JSON.stringify(value)}`);
  }
  if (h['strict-transport-security']) problems.push('Strict-Transport-Security sent over plain HTTP');
  return problems;
}

// ---- dynamic registration and resource indicators -----------------------

// The code exchanges of one client in the IdP's grant log.
async function codeGrants(clientId) {
  const log = (await getJSON(`${cfg.idp}/__test/grants`)).json;
  return log?.[clientId]?.authorization_code || { success: 0, error: 0, errors: [] };
}

// Dynamic client registration (RFC 7591): the gate started without a
// clientID registered one at the IdP (with the initial access token) and kept
// it in its credentials file; alice logs in through Traefik with that client.
// The gate is then restarted: it uses the kept client (same client_id, no
// second registration at the IdP) and a new login works.
async function dcrLogin(t, dcr) {
  const door = { name: 'traefik', origin: dcr.origin };
  const kept = () => JSON.parse(fs.readFileSync(dcr.credentialsFile, 'utf8'));
  const first = kept();
  ensure(first.client_id && first.issuer === cfg.idp, `credentials file holds ${JSON.stringify({ client_id: first.client_id, issuer: first.issuer })}`);
  const registered = (await counters())['registration.success'];
  ensure(registered === 1, `the IdP counted ${registered} registration(s) at start-up, expected 1`);
  const loginAs = async (path) => {
    const g0 = await codeGrants(first.client_id);
    const echo = await loginThrough(t, door, new CookieJar(), path);
    const g1 = await codeGrants(first.client_id);
    ensure(hdr(echo, 'x-forwarded-user')[0] === cfg.account.email, `upstream X-Forwarded-User = ${JSON.stringify(hdr(echo, 'x-forwarded-user'))}`, t.trace);
    ensure(g1.success - g0.success === 1 && g1.error === g0.error,
      `IdP grant log for ${first.client_id}: ${g1.success - g0.success} code exchange(s), ${g1.error - g0.error} refused${g1.errors.length ? `; last: ${g1.errors.at(-1)}` : ''}`, t.trace);
  };
  await loginAs('/app/dcr');

  // Restart: stop the gate, start it again with the same configuration.
  const health = `http://127.0.0.1:${dcr.port}/healthz`;
  process.kill(-dcr.pid, 'SIGTERM');
  const [down] = await until(15000, async () => (await request(health).then(() => false, () => true)));
  ensure(down, 'the registration gate still answers 15 s after SIGTERM');
  const log = fs.openSync(dcr.log, 'a');
  const gate = spawn(dcr.bin, ['--config', dcr.config], { stdio: ['ignore', log, log], env: { ...process.env, NO_COLOR: '1' } });
  try {
    const [ready] = await until(30000, async () => (await request(`http://127.0.0.1:${dcr.port}/readyz`)).status === 200);
    ensure(ready, `the restarted registration gate was not ready within 30 s (${dcr.log})`);
    const second = kept();
    ensure(second.client_id === first.client_id, `after the restart the kept client is ${second.client_id}, was ${first.client_id}`);
    const after = (await counters())['registration.success'];
    ensure(after === registered, `the restarted gate registered again (${after - registered} more registration(s))`);
    await loginAs('/app/dcr-restarted');
  } finally {
    gate.kill('SIGTERM');
    fs.closeSync(log);
  }
  return { detail: `registered ${first.client_id} once; logged in before and after a restart with the kept client` };
}

// RFC 8707: the gate with `resource: <API audience>` and
// strictAudienceValidation logs alice in through Traefik; the access token it
// forwards (passAccessToken) is a JWT whose audience is the API. After the
// tokens expired (they live resource.ttl seconds), a request is refreshed
// (a refresh_token grant at the IdP) and the new token names the API too.
async function resourceLogin(t, res, discovery) {
  const door = { name: 'traefik', origin: res.origin };
  const jar = new CookieJar();
  const echo = await loginThrough(t, door, jar, '/app/resource');
  ensure(hdr(echo, 'x-forwarded-user')[0] === cfg.account.email, `upstream X-Forwarded-User = ${JSON.stringify(hdr(echo, 'x-forwarded-user'))}`, t.trace);
  const audienceOf = async (e, when) => {
    const token = hdr(e, 'x-forwarded-access-token')[0];
    ensure(token, `${when}: no X-Forwarded-Access-Token upstream`, t.trace);
    const { payload } = await verifyJwt(token, discovery);
    const aud = [].concat(payload.aud);
    ensure(aud.includes(res.audience), `${when}: access token aud ${JSON.stringify(payload.aud)}, expected ${res.audience}`, t.trace);
    return token;
  };
  const first = await audienceOf(echo, 'after login');
  const refreshes = async () => {
    const log = (await getJSON(`${cfg.idp}/__test/grants`)).json;
    return log?.[res.clientId]?.refresh_token || { success: 0, error: 0, errors: [] };
  };
  const g0 = await refreshes();
  // Requests on the session until the gate has refreshed it (the tokens
  // live res.ttl seconds), bounded.
  let again;
  let g1 = g0;
  await until((res.ttl + 10) * 1000, async () => {
    again = await navigate(`${door.origin}/app/resource-refreshed`, { jar, headers: XHR_HEADERS, follow: false, trace: t.trace });
    g1 = await refreshes();
    return g1.success > g0.success || g1.error > g0.error;
  }, 500);
  const echo2 = echoOf(again.res);
  ensure(echo2, `request after expiry answered ${again.res.status}, not the upstream`, t.trace);
  ensure(g1.success > g0.success && g1.error === g0.error,
    `IdP grant log for ${res.clientId}: ${g1.success - g0.success} refresh_token grant(s), ${g1.error - g0.error} refused${g1.errors.length ? `; last: ${g1.errors.at(-1)}` : ''}`, t.trace);
  const second = await audienceOf(echo2, 'after refresh');
  ensure(second !== first, 'the access token after the refresh is the one from the login', t.trace);
  return { detail: `access token aud ${res.audience} after login and after ${g1.success - g0.success} refresh(es)` };
}

// ---- main ---------------------------------------------------------------

async function main() {
  const disc = await getJSON(`${cfg.idp}/.well-known/openid-configuration`);
  const discovery = disc.json;

  process.stdout.write('peer checks\n');
  if (!discovery?.issuer) {
    skip('peers', 'idp-login', 'idp', `discovery failed (${disc.res.status})`);
  } else {
    await scenario('peers', 'idp-login', 'idp', (t) => idpPlainLogin(t, discovery));
    await scenario('peers', 'idp-m2m-jwt', 'idp', (t) => idpClientCredentials(t, discovery));
  }
  for (const door of cfg.doors.filter((d) => d.kind !== 'proxy')) {
    await scenario('peers', 'proxy-routing', door.name, (t) => proxyRouting(t, door));
  }

  process.stdout.write('gateway scenarios\n');
  const names = ['nav-302', 'xhr-401', 'excluded', 'login', 'spoof', 'logout', ...(cfg.refresh ? ['refresh'] : [])];
  const states = {};
  for (const door of cfg.doors) {
    const gate = cfg.gates[door.gate];
    if (gate !== 'ok' || !discovery?.issuer) {
      for (const n of names) skip('gate', n, door.name, gate !== 'ok' ? `gateway not available: ${gate}` : 'IdP not available');
      continue;
    }
    const state = {};
    await scenario('gate', 'nav-302', door.name, (t) => navRedirect(t, door, discovery));
    await scenario('gate', 'xhr-401', door.name, (t) => xhr401(t, door));
    await scenario('gate', 'excluded', door.name, (t) => excluded(t, door));
    await scenario('gate', 'login', door.name, (t) => login(t, door, state));
    await scenario('gate', 'spoof', door.name, (t) => spoof(t, door, state));
    await scenario('gate', 'logout', door.name, (t) => logout(t, door, state, discovery));
    if (door.name === 'traefik') await scenario('gate', 'bearer', door.name, (t) => bearer(t, door, discovery));
    states[door.name] = state;
  }

  for (const entry of cfg.clientAuth || []) {
    const name = entry.method === 'private_key_jwt' ? 'auth-pk-jwt' : 'auth-basic';
    if (entry.gate !== 'ok' || !discovery?.issuer) skip('gate', name, 'traefik', entry.gate !== 'ok' ? `gateway not available: ${entry.gate}` : 'IdP not available');
    else await scenario('gate', name, 'traefik', (t) => clientAuthLogin(t, entry));
  }

  for (const entry of cfg.plugin || []) {
    if (entry.status !== 'ok' || !discovery?.issuer) skip('gate', 'plugin-block', entry.door, entry.status !== 'ok' ? `gateway not available: ${entry.status}` : 'IdP not available');
    else await scenario('gate', 'plugin-block', entry.door, (t) => pluginBlock(t, entry));
  }

  if (cfg.dcr) {
    const ok = cfg.dcr.gate === 'ok' && discovery?.issuer;
    if (!ok) skip('gate', 'dcr', 'traefik', cfg.dcr.gate !== 'ok' ? `gateway not available: ${cfg.dcr.gate}` : 'IdP not available');
    else await scenario('gate', 'dcr', 'traefik', (t) => dcrLogin(t, cfg.dcr));
  }
  if (cfg.resource) {
    const ok = cfg.resource.gate === 'ok' && discovery?.issuer;
    if (!ok) skip('gate', 'resource', 'traefik', cfg.resource.gate !== 'ok' ? `gateway not available: ${cfg.resource.gate}` : 'IdP not available');
    else await scenario('gate', 'resource', 'traefik', (t) => resourceLogin(t, cfg.resource, discovery));
  }

  const rb = cfg.refreshBurst;
  if (rb) {
    const gate = cfg.gates[rb.gate];
    if (gate !== 'ok' || !discovery?.issuer) skip('gate', 'refresh-50', rb.door, gate !== 'ok' ? `gateway not available: ${gate}` : 'IdP not available');
    else await scenario('gate', 'refresh-50', rb.door, (t) => refreshBurst(t, rb));
  }

  if (cfg.refresh) {
    // Opt-in: every door's session is now older than the token lifetimes.
    const live = cfg.doors.filter((d) => states[d.name]?.jar);
    const last = Math.max(0, ...live.map((d) => states[d.name].loginAt));
    const waitMs = last + (cfg.accessTokenTTL + 2) * 1000 - Date.now();
    if (waitMs > 0) {
      process.stdout.write(`refresh: waiting ${Math.ceil(waitMs / 1000)}s for the tokens to expire\n`);
      await new Promise((r) => setTimeout(r, waitMs));
    }
    for (const door of cfg.doors) {
      if (!states[door.name]?.jar) {
        if (states[door.name]) skip('gate', 'refresh', door.name, 'no session (login failed)');
        continue;
      }
      await scenario('gate', 'refresh', door.name, (t) => refresh(t, door, states[door.name]));
    }
  }
}

try {
  await main();
} catch (err) {
  results.push({ group: 'harness', scenario: 'scenarios', door: '-', status: 'fail', detail: err.stack || String(err), notes: [] });
  console.error(err);
}
fs.writeFileSync(out, JSON.stringify(results, null, 2));
