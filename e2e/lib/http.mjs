// A small HTTP client for scripted logins: raw node:http (so every header and
// every Set-Cookie is visible), a cookie jar that follows the browser rules the
// tests depend on (host-only vs domain, path, expiry and deletion, ports
// ignored, SameSite on cross-site requests), redirect following with a trace,
// and HTML form extraction.

import http from 'node:http';

export const NAV_HEADERS = {
  'user-agent': 'oidcgate-e2e/1 (scripted browser)',
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'sec-fetch-mode': 'navigate',
  'sec-fetch-dest': 'document',
  'upgrade-insecure-requests': '1',
};

export const XHR_HEADERS = {
  'user-agent': 'oidcgate-e2e/1 (scripted xhr)',
  accept: 'application/json',
  'x-requested-with': 'XMLHttpRequest',
  'sec-fetch-mode': 'cors',
  'sec-fetch-dest': 'empty',
};

const site = (host) => host.toLowerCase(); // no public-suffix needs on loopback

export class CookieJar {
  constructor() {
    this.cookies = [];
  }

  store(url, setCookies, now = Date.now()) {
    const u = new URL(url);
    for (const line of setCookies) {
      const parts = line.split(';');
      const eq = parts[0].indexOf('=');
      if (eq <= 0) continue;
      const c = {
        name: parts[0].slice(0, eq).trim(),
        value: parts[0].slice(eq + 1).trim(),
        domain: u.hostname.toLowerCase(),
        hostOnly: true,
        path: defaultPath(u.pathname),
        expires: null,
        secure: false,
        httpOnly: false,
        sameSite: 'lax', // browsers' default when the attribute is absent
      };
      let maxAge = null;
      for (const attr of parts.slice(1)) {
        const i = attr.indexOf('=');
        const k = (i < 0 ? attr : attr.slice(0, i)).trim().toLowerCase();
        const v = i < 0 ? '' : attr.slice(i + 1).trim();
        if (k === 'domain' && v) {
          const d = v.replace(/^\./, '').toLowerCase();
          if (u.hostname !== d && !u.hostname.endsWith(`.${d}`)) { c.rejected = true; }
          c.domain = d;
          c.hostOnly = false;
        } else if (k === 'path' && v.startsWith('/')) c.path = v;
        else if (k === 'max-age') maxAge = Number(v);
        else if (k === 'expires') { const t = Date.parse(v); if (!Number.isNaN(t) && maxAge === null) c.expires = t; }
        else if (k === 'secure') c.secure = true;
        else if (k === 'httponly') c.httpOnly = true;
        else if (k === 'samesite') c.sameSite = v.toLowerCase();
      }
      if (c.rejected) continue;
      if (maxAge !== null && !Number.isNaN(maxAge)) c.expires = maxAge <= 0 ? 0 : now + maxAge * 1000;
      this.cookies = this.cookies.filter((o) => !(o.name === c.name && o.domain === c.domain && o.path === c.path));
      if (c.expires !== null && c.expires <= now) continue; // deletion
      this.cookies.push(c);
    }
  }

  matching(url, { crossSite = false, method = 'GET', topLevel = true } = {}, now = Date.now()) {
    const u = new URL(url);
    const host = u.hostname.toLowerCase();
    this.cookies = this.cookies.filter((c) => c.expires === null || c.expires > now);
    return this.cookies
      .filter((c) => (c.hostOnly ? host === c.domain : host === c.domain || host.endsWith(`.${c.domain}`)))
      .filter((c) => pathMatches(u.pathname, c.path))
      .filter((c) => {
        if (!crossSite) return true;
        if (c.sameSite === 'strict') return false;
        if (c.sameSite === 'lax') return topLevel && method === 'GET';
        return true; // none
      })
      .sort((a, b) => b.path.length - a.path.length);
  }

  header(url, opts) {
    return this.matching(url, opts).map((c) => `${c.name}=${c.value}`).join('; ');
  }

  // Cookies for a host whose name matches a RegExp (ports are ignored, as in browsers).
  named(host, re) {
    return this.cookies.filter((c) => c.domain === host && re.test(c.name));
  }

  clone() {
    const j = new CookieJar();
    j.cookies = this.cookies.map((c) => ({ ...c }));
    return j;
  }
}

function defaultPath(p) {
  if (!p.startsWith('/')) return '/';
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}

function pathMatches(reqPath, cookiePath) {
  if (reqPath === cookiePath) return true;
  if (!reqPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || reqPath[cookiePath.length] === '/';
}

// One request. `headers` may hold arrays for repeated headers.
export function request(url, { method = 'GET', headers = {}, body, jar, crossSite = false, timeoutMs = 10000 } = {}) {
  const u = new URL(url);
  const h = { ...headers };
  const cookie = jar ? jar.header(url, { crossSite, method }) : '';
  if (cookie) h.cookie = cookie;
  if (body !== undefined) {
    h['content-type'] ||= 'application/x-www-form-urlencoded';
    h['content-length'] = Buffer.byteLength(body);
  }
  return new Promise((resolve, reject) => {
    const req = http.request({
      // The app side is addressed as "localhost" but every server here
      // listens on 127.0.0.1 only.
      host: '127.0.0.1',
      port: u.port || 80,
      method,
      path: `${u.pathname}${u.search}`,
      headers: { host: u.host, ...h },
      agent: false,
      timeout: timeoutMs,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const setCookies = [].concat(res.headers['set-cookie'] || []);
        if (jar) jar.store(url, setCookies);
        resolve({
          url,
          method,
          status: res.statusCode,
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          setCookies,
          body: Buffer.concat(chunks).toString('utf8'),
          requestHeaders: { host: u.host, ...h },
        });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs}ms: ${method} ${url}`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

// Follows redirects like a browser navigation. `stop(url)` returning true ends
// the chain before that URL is requested (the URL is returned as `stoppedAt`).
// `initiator` is the URL of the page that started the navigation (for SameSite).
export async function navigate(url, { jar, method = 'GET', body, headers = NAV_HEADERS, initiator = null, stop, follow = true, maxHops = 15, trace = [] } = {}) {
  let current = url;
  let prev = initiator;
  let m = method;
  let b = body;
  for (let hop = 0; hop < maxHops; hop += 1) {
    if (stop && stop(current)) return { stoppedAt: current, trace, last: trace[trace.length - 1]?.res };
    const crossSite = prev !== null && site(new URL(prev).hostname) !== site(new URL(current).hostname);
    const h = { ...headers };
    if (prev !== null) h['sec-fetch-site'] = crossSite ? 'cross-site' : 'same-origin';
    if (b !== undefined && prev) h.origin = new URL(prev).origin;
    const res = await request(current, { method: m, headers: h, body: b, jar, crossSite });
    trace.push({ req: { method: m, url: current, headers: res.requestHeaders, body: b }, res: summarize(res) });
    if (!follow || !REDIRECTS.has(res.status) || !res.headers.location) return { res, trace, url: current };
    const next = new URL(res.headers.location, current).toString();
    if (res.status === 303 || ((res.status === 301 || res.status === 302) && m === 'POST')) { m = 'GET'; b = undefined; }
    prev = current;
    current = next;
  }
  throw Object.assign(new Error(`more than ${maxHops} redirects`), { trace });
}

export function summarize(res) {
  return { status: res.status, headers: res.rawHeaders, bodyStart: res.body.slice(0, 600) };
}

const decodeEntities = (s) => s
  .replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>')
  .replace(/&#x([0-9a-f]+);/gi, (_, x) => String.fromCodePoint(parseInt(x, 16)))
  .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
  .replace(/&amp;/g, '&');

function attrs(tag) {
  const out = {};
  const re = /([a-zA-Z_:.-]+)\s*(?:=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g;
  let m;
  const inner = tag.replace(/^<\s*[a-zA-Z]+/, '').replace(/\/?>$/, '');
  while ((m = re.exec(inner))) out[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  return out;
}

// The first <form> of a page (or the one with `id`): action (absolute),
// method, and its named inputs with their values.
export function parseForm(html, pageUrl, id) {
  const re = /<form\b[^>]*>([\s\S]*?)<\/form>/gi;
  let m;
  while ((m = re.exec(html))) {
    const open = m[0].match(/^<form\b[^>]*>/i)[0];
    const a = attrs(open);
    if (id && a.id !== id) continue;
    const fields = {};
    for (const input of m[1].match(/<input\b[^>]*>/gi) || []) {
      const ia = attrs(input);
      if (ia.name) fields[ia.name] = ia.value ?? '';
    }
    return {
      id: a.id,
      action: new URL(a.action || pageUrl, pageUrl).toString(),
      method: (a.method || 'GET').toUpperCase(),
      fields,
    };
  }
  return null;
}

export async function submitForm(form, pageUrl, values, opts = {}) {
  const data = new URLSearchParams({ ...form.fields, ...values }).toString();
  if (form.method === 'POST') return navigate(form.action, { ...opts, method: 'POST', body: data, initiator: pageUrl });
  const u = new URL(form.action);
  u.search = data;
  return navigate(u.toString(), { ...opts, initiator: pageUrl });
}

// The JSON the echo upstream embedded in its HTML page, or its JSON body.
export function echoOf(res) {
  if (!res || res.status !== 200) return null;
  const ct = String(res.headers['content-type'] || '');
  try {
    if (ct.includes('application/json')) {
      const j = JSON.parse(res.body);
      return j.upstream === 'oidcgate-e2e-echo' ? j : null;
    }
    const m = res.body.match(/<script type="application\/json" id="echo">([\s\S]*?)<\/script>/);
    return m ? JSON.parse(m[1]) : null;
  } catch {
    return null;
  }
}

export async function getJSON(url, opts = {}) {
  const res = await request(url, { headers: { accept: 'application/json' }, ...opts });
  let json = null;
  try { json = JSON.parse(res.body); } catch { /* not JSON */ }
  return { res, json };
}

// Renders a trace for a failure report: every hop's request line, the
// headers that matter, and the response status, headers and body start.
// Cookie values are shortened (names and sizes are what matter).
export function renderTrace(trace, max = 12) {
  const short = (v) => String(v).replace(/=([^;,\s]{24})[^;,\s]+/g, '=$1…');
  const lines = [];
  for (const { req, res } of trace.slice(-max)) {
    lines.push(`> ${req.method} ${req.url}`);
    for (const [k, v] of Object.entries(req.headers)) {
      if (['user-agent', 'upgrade-insecure-requests', 'sec-fetch-dest', 'content-length'].includes(k)) continue;
      lines.push(`>   ${k}: ${k === 'cookie' ? short(v) : v}`);
    }
    if (req.body) lines.push(`>   (body) ${String(req.body).slice(0, 300)}`);
    if (!res) { lines.push('<   (no response)'); continue; }
    lines.push(`< ${res.status}`);
    for (let i = 0; i < res.headers.length; i += 2) {
      const k = res.headers[i];
      if (/^(date|connection|keep-alive|content-length|transfer-encoding)$/i.test(k)) continue;
      lines.push(`<   ${k}: ${/set-cookie/i.test(k) ? short(res.headers[i + 1]) : res.headers[i + 1]}`);
    }
    if (res.bodyStart) lines.push(`<   (body) ${res.bodyStart.replace(/\s+/g, ' ').slice(0, 400)}`);
  }
  return lines.join('\n');
}

// Polls fn (a failure counts as no value) every `every` ms until it returns
// a truthy value or `ms` pass; returns [value or undefined, elapsed ms].
export async function until(ms, fn, every = 100) {
  const t0 = Date.now();
  for (;;) {
    let v;
    try { v = await fn(); } catch { v = undefined; }
    if (v) return [v, Date.now() - t0];
    if (Date.now() - t0 >= ms) return [undefined, Date.now() - t0];
    await new Promise((r) => setTimeout(r, every));
  }
}
