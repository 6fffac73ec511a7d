// The upstream application: answers every request with what it received.
// JSON by default; an HTML page (with the same JSON inside) when the client
// accepts text/html, so a browser screenshot shows who is signed in.
// GET /__echo/stats on its own port reports how many requests it saw and
// every request that carried a spoof marker in any header.

import http from 'node:http';

const port = Number(process.env.ECHO_PORT);
const marker = (process.env.ECHO_SPOOF_MARKER || 'mallory').toLowerCase();
const IDENTITY = ['x-forwarded-user', 'x-auth-request-user', 'x-auth-request-email', 'x-user-groups', 'x-user-roles'];

// What an application framework says about itself: removed by the gate's
// security headers (disableServerHeader, disablePoweredByHeader).
const SERVER_HEADERS = { server: 'e2e-echo', 'x-powered-by': 'e2e-echo' };

let total = 0;
const spoofed = [];

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

function headerList(req) {
  const out = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) out.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
  return out;
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://upstream.invalid');
  if (url.pathname === '/__echo/stats' && !req.headers['x-forwarded-for'] && !req.headers['x-forwarded-host']) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ total, spoofed }));
    return;
  }
  total += 1;
  const headers = headerList(req);
  const byName = {};
  for (const [k, v] of headers) (byName[k.toLowerCase()] ||= []).push(v);
  const hits = headers.filter(([, v]) => v.toLowerCase().includes(marker));
  if (hits.length) spoofed.push({ method: req.method, url: req.url, headers: hits });
  const echo = { upstream: 'oidcgate-e2e-echo', method: req.method, url: req.url, headers, byName };

  req.resume();
  req.on('end', () => {
    const accept = String(req.headers.accept || '');
    if (accept.includes('text/html')) {
      const ident = IDENTITY.map((h) => `<tr><th>${esc(h)}</th><td>${esc((byName[h] || ['(none)']).join(' | '))}</td></tr>`).join('');
      const json = JSON.stringify(echo).replace(/</g, '\\u003c');
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', ...SERVER_HEADERS });
      res.end(`<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>e2e upstream</title>
<style>body{font-family:sans-serif;margin:40px;background:#f6fff4}h1{font-size:22px}table{border-collapse:collapse}th,td{border:1px solid #9b9;padding:6px 10px;text-align:left;font-size:14px}th{background:#e2f5dd}</style>
</head><body><h1 id="who">Hello, ${esc((byName['x-forwarded-user'] || ['anonymous'])[0])}</h1>
<p>The upstream application received <code>${esc(req.method)} ${esc(req.url)}</code> with these identity headers:</p>
<table>${ident}</table>
<script type="application/json" id="echo">${json}</script></body></html>`);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', ...SERVER_HEADERS });
    res.end(JSON.stringify(echo));
  });
});

server.listen(port, '127.0.0.1', () => console.log(`echo upstream on http://127.0.0.1:${port}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => { server.close(); process.exit(0); });
