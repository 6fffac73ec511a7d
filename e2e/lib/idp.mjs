// The OpenID Provider for the interop suite, built on the `oidc-provider`
// package. Everything it needs comes from the environment (see `env()` below);
// it listens on 127.0.0.1 only.
//
// Test-only additions:
//   GET  /interaction/:uid        a plain HTML login form (username + password)
//   POST /interaction/:uid/login  checks the test account and finishes the login
//   GET  /__test/counters         JSON counters of provider events
//   GET  /__test/grants           token-endpoint grants per client and grant type
//
// Dynamic client registration (POST /reg, RFC 7591) is open to holders of
// IDP_DCR_INITIAL_ACCESS_TOKEN when it is set.
//
// Consent is never asked: the grant loader creates or extends the grant for
// the requested scopes. RP-initiated logout auto-submits its confirmation form
// with logout=yes, so the whole IdP session ends.

import http from 'node:http';
import crypto from 'node:crypto';
import { URLSearchParams } from 'node:url';
import Provider, { errors as oidcErrors } from 'oidc-provider';

function env(name, fallback) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    if (fallback === undefined) throw new Error(`missing environment variable ${name}`);
    return fallback;
  }
  return v;
}

function list(name) {
  return env(name, '').split(',').map((s) => s.trim()).filter(Boolean);
}

const port = Number(env('IDP_PORT'));
const issuer = `http://127.0.0.1:${port}`;
const accessTokenTTL = Number(env('IDP_ACCESS_TOKEN_TTL', '300'));
const idTokenTTL = Number(env('IDP_ID_TOKEN_TTL', '3600'));
const apiAudience = env('IDP_API_AUDIENCE', 'urn:oidcgate:e2e-api');
const userTokenFormat = env('IDP_USER_ACCESS_TOKEN_FORMAT', 'opaque'); // or "jwt"
// The refresh client's tokens live this long, so its sessions expire quickly.
const refreshClientTTL = Number(env('IDP_REFRESH_ACCESS_TOKEN_TTL', '5'));
const refreshClientId = env('IDP_REFRESH_CLIENT_ID', 'oidcgate-refresh');

const ACCOUNTS = {
  alice: {
    password: env('IDP_ALICE_PASSWORD', 'wonderland'),
    claims: {
      email: 'alice@example.com',
      email_verified: true,
      name: 'Alice Example',
      preferred_username: 'alice',
      groups: ['staff'],
    },
  },
};

const counters = {
  'grant.success': 0,
  'grant.error': 0,
  'grant.revoked': 0,
  'authorization.success': 0,
  'authorization.error': 0,
  'end_session.success': 0,
  'interaction.login_form': 0,
  'interaction.login_ok': 0,
  'interaction.login_bad': 0,
  'refresh_token.reuse': 0,
  'registration.success': 0,
  'registration.error': 0,
  'server_error': 0,
};
const lastErrors = [];
// Token-endpoint outcomes: grants[clientId][grant_type] = { success, error, reuse }.
const grants = {};
function noteGrant(ctx, outcome, err) {
  const client = ctx.oidc?.client?.clientId || ctx.oidc?.params?.client_id || '-';
  const type = ctx.oidc?.params?.grant_type || '-';
  grants[client] ||= {};
  const g = (grants[client][type] ||= { success: 0, error: 0, reuse: 0, errors: [] });
  g[outcome] += 1;
  if (err) {
    const description = String(err?.error_description || err?.message || '');
    if (/already used|reuse/i.test(description)) g.reuse += 1;
    g.errors.push(`${err?.error || err?.name}: ${description}`.slice(0, 200));
    if (g.errors.length > 10) g.errors.shift();
  }
}
function noteError(kind, err) {
  lastErrors.push({ kind, error: err?.error || err?.name, description: err?.error_description || err?.message });
  if (lastErrors.length > 20) lastErrors.shift();
}

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: `e2e-${crypto.randomBytes(4).toString('hex')}`, use: 'sig', alg: 'RS256' };

const gateClient = {
  client_id: env('IDP_GATE_CLIENT_ID', 'oidcgate'),
  client_secret: env('IDP_GATE_CLIENT_SECRET'),
  token_endpoint_auth_method: env('IDP_GATE_AUTH_METHOD', 'client_secret_post'),
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: list('IDP_GATE_REDIRECT_URIS'),
  post_logout_redirect_uris: list('IDP_GATE_POST_LOGOUT_URIS'),
};
// A second gate registration whose access and ID tokens expire after
// IDP_REFRESH_ACCESS_TOKEN_TTL seconds (the refresh scenario).
const refreshClient = process.env.IDP_REFRESH_CLIENT_SECRET ? {
  client_id: refreshClientId,
  client_secret: env('IDP_REFRESH_CLIENT_SECRET'),
  token_endpoint_auth_method: env('IDP_GATE_AUTH_METHOD', 'client_secret_post'),
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: list('IDP_REFRESH_REDIRECT_URIS'),
  post_logout_redirect_uris: [],
} : null;
if (process.env.IDP_GATE_BACKCHANNEL_URI) {
  gateClient.backchannel_logout_uri = process.env.IDP_GATE_BACKCHANNEL_URI;
  gateClient.backchannel_logout_session_required = true;
}

// Client-authentication gates (one client each, one method each): a
// private_key_jwt client with the gate's public key, and a
// client_secret_basic client whose secret needs form-encoding.
const clientAuthClients = [];
if (process.env.IDP_PKJWT_JWKS) {
  clientAuthClients.push({
    client_id: env('IDP_PKJWT_CLIENT_ID', 'oidcgate-pkjwt'),
    token_endpoint_auth_method: 'private_key_jwt',
    jwks: JSON.parse(env('IDP_PKJWT_JWKS')),
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: list('IDP_PKJWT_REDIRECT_URIS'),
  });
}
if (process.env.IDP_BASIC_CLIENT_SECRET) {
  clientAuthClients.push({
    client_id: env('IDP_BASIC_CLIENT_ID', 'oidcgate-basic'),
    client_secret: env('IDP_BASIC_CLIENT_SECRET'),
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: list('IDP_BASIC_REDIRECT_URIS'),
  });
}

// The resource-indicator gate's client (RFC 8707): its tokens, like the
// refresh client's, expire after IDP_REFRESH_ACCESS_TOKEN_TTL seconds so that
// the scenario sees a refresh.
const resourceClientId = env('IDP_RESOURCE_CLIENT_ID', 'oidcgate-resource');
const resourceClient = process.env.IDP_RESOURCE_CLIENT_SECRET ? {
  client_id: resourceClientId,
  client_secret: env('IDP_RESOURCE_CLIENT_SECRET'),
  token_endpoint_auth_method: env('IDP_GATE_AUTH_METHOD', 'client_secret_post'),
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: list('IDP_RESOURCE_REDIRECT_URIS'),
} : null;
const shortLived = (client) => client?.clientId === refreshClientId || client?.clientId === resourceClientId;
const dcrInitialAccessToken = process.env.IDP_DCR_INITIAL_ACCESS_TOKEN || '';

const clients = [
  gateClient,
  ...(refreshClient ? [refreshClient] : []),
  ...(resourceClient ? [resourceClient] : []),
  ...clientAuthClients,
  {
    // The suite's own relying party, used to check the provider by itself.
    client_id: 'e2e-rp',
    client_secret: env('IDP_RP_CLIENT_SECRET'),
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: list('IDP_RP_REDIRECT_URIS'),
    post_logout_redirect_uris: list('IDP_RP_REDIRECT_URIS'),
  },
  {
    // A machine client: client_credentials, JWT access tokens for the API.
    client_id: 'e2e-m2m',
    client_secret: env('IDP_M2M_CLIENT_SECRET'),
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: 'api:read',
  },
];

const page = (title, body) => `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<style>
body{font-family:sans-serif;background:#eef1f5;margin:0;padding:40px}
.card{max-width:360px;margin:0 auto;background:#fff;border-radius:6px;padding:24px 32px;box-shadow:0 1px 4px rgba(0,0,0,.2)}
h1{font-size:20px;margin:0 0 4px}p.sub{color:#667;margin:0 0 18px;font-size:13px}
label{display:block;font-size:13px;margin:12px 0 4px}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:8px;border:1px solid #bbc;border-radius:4px}
button{margin-top:18px;width:100%;padding:10px;border:0;border-radius:4px;background:#2d6cdf;color:#fff;font-size:15px}
.err{color:#b00020;font-size:13px}
</style></head><body><div class="card">${body}</div></body></html>`;

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

const configuration = {
  clients,
  jwks: { keys: [signingKey] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups', 'api:read'],
  conformIdTokenClaims: false,
  async findAccount(ctx, sub) {
    const account = ACCOUNTS[sub];
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, ...account.claims };
      },
    };
  },
  interactions: {
    url: (ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  async loadExistingGrant(ctx) {
    const { Grant } = ctx.oidc.provider;
    const clientId = ctx.oidc.client.clientId;
    const accountId = ctx.oidc.session.accountId;
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(clientId);
    let grant = grantId ? await Grant.find(grantId) : undefined;
    if (!grant || grant.accountId !== accountId) {
      grant = new Grant({ clientId, accountId });
    }
    // Skip consent: grant whatever OIDC scopes and claims were asked for.
    grant.addOIDCScope([...ctx.oidc.requestParamOIDCScopes].join(' ') || 'openid');
    const claims = [...ctx.oidc.requestParamClaims];
    if (claims.length) grant.addOIDCClaims(claims);
    for (const [resource, scope] of Object.entries(ctx.oidc.resourceServers || {})) {
      grant.addResourceScope(resource, scope.scope || '');
    }
    await grant.save();
    return grant;
  },
  // Refresh tokens for every client allowed the grant, rotated on each use.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: () => true,
  ttl: {
    AccessToken: (ctx, token, client) => (shortLived(client) ? refreshClientTTL
      : token.resourceServer?.accessTokenTTL || accessTokenTTL),
    ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL || accessTokenTTL,
    IdToken: (ctx, token, client) => (shortLived(client) ? refreshClientTTL : idTokenTTL),
    AuthorizationCode: () => 60,
    Interaction: () => 600,
    Session: () => 3600,
    Grant: () => 3600,
    RefreshToken: () => 3600,
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    backchannelLogout: { enabled: true },
    registration: {
      enabled: Boolean(dcrInitialAccessToken),
      initialAccessToken: dcrInitialAccessToken || false,
    },
    resourceIndicators: {
      enabled: true,
      // Machine clients get the API by default; users' tokens stay opaque
      // (usable at userinfo) unless IDP_USER_ACCESS_TOKEN_FORMAT=jwt.
      defaultResource: (ctx, client, oneOf) => {
        if (oneOf) return oneOf;
        if (client.clientId === 'e2e-m2m') return apiAudience;
        if (userTokenFormat === 'jwt' && client.clientId === gateClient.client_id) return apiAudience;
        return undefined;
      },
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator) => {
        if (resourceIndicator !== apiAudience) throw new oidcErrors.InvalidTarget();
        return {
          scope: 'api:read openid email profile groups',
          audience: apiAudience,
          accessTokenTTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        const autoForm = form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>');
        ctx.type = 'html';
        ctx.body = page('Signing out', `<h1>Signing out</h1><p class="sub">oidcgate e2e IdP</p>${autoForm}
<noscript><button type="submit" form="op.logoutForm">Sign out</button></noscript>
<script>document.getElementById('op.logoutForm').submit();</script>`);
      },
      postLogoutSuccessSource: async (ctx) => {
        ctx.type = 'html';
        ctx.body = page('Signed out', '<h1>Signed out</h1><p class="sub">oidcgate e2e IdP</p>');
      },
    },
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('IdP error', `<h1>IdP error</h1>${Object.entries(out).map(([k, v]) => `<p class="err"><b>${esc(k)}</b>: ${esc(v)}</p>`).join('')}`);
  },
};

const provider = new Provider(issuer, configuration);
provider.proxy = false;

provider.on('grant.success', (ctx) => noteGrant(ctx, 'success'));
provider.on('grant.error', (ctx, err) => noteGrant(ctx, 'error', err));
for (const ev of ['grant.success', 'authorization.success', 'end_session.success', 'grant.revoked']) {
  provider.on(ev, () => { counters[ev] += 1; });
}
provider.on('grant.error', (ctx, err) => {
  counters['grant.error'] += 1;
  if (String(err?.error_description || err?.message).includes('already used')) counters['refresh_token.reuse'] += 1;
  noteError('grant.error', err);
});
provider.on('authorization.error', (ctx, err) => { counters['authorization.error'] += 1; noteError('authorization.error', err); });
provider.on('server_error', (ctx, err) => { counters.server_error += 1; noteError('server_error', err); });
provider.on('registration_create.success', () => { counters['registration.success'] += 1; });
provider.on('registration_create.error', (ctx, err) => { counters['registration.error'] += 1; noteError('registration_create.error', err); });

function readBody(req, limit = 64 * 1024) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) { reject(new Error('body too large')); req.destroy(); return; }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function loginForm(uid, details, error) {
  const clientId = details.params.client_id;
  return page('Sign in - oidcgate e2e IdP', `<h1>Sign in</h1>
<p class="sub">oidcgate e2e IdP &middot; for <b>${esc(clientId)}</b></p>
${error ? `<p class="err">${esc(error)}</p>` : ''}
<form id="login-form" method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
<label for="username">Username</label><input id="username" type="text" name="username" autofocus>
<label for="password">Password</label><input id="password" type="password" name="password">
<button id="submit" type="submit">Sign in</button>
</form>`);
}

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}

async function interaction(req, res, parts) {
  const uid = parts[2];
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction uid mismatch');
  const prompt = details.prompt.name;

  if (req.method === 'GET' && parts.length === 3) {
    if (prompt === 'login') {
      counters['interaction.login_form'] += 1;
      return send(res, 200, 'text/html; charset=utf-8', loginForm(uid, details));
    }
    // Consent is granted by loadExistingGrant; finish any other prompt as is.
    const grant = new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    grant.addOIDCScope(String(details.params.scope || 'openid'));
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }

  if (req.method === 'POST' && parts[3] === 'login' && parts.length === 4) {
    const form = new URLSearchParams(await readBody(req));
    const username = form.get('username') || '';
    const account = ACCOUNTS[username];
    if (!account || form.get('password') !== account.password) {
      counters['interaction.login_bad'] += 1;
      return send(res, 200, 'text/html; charset=utf-8', loginForm(uid, details, 'Unknown user or wrong password.'));
    }
    counters['interaction.login_ok'] += 1;
    return provider.interactionFinished(req, res, { login: { accountId: username } }, { mergeWithLastSubmission: false });
  }
  return send(res, 405, 'text/plain', 'method not allowed\n');
}

const handleProvider = provider.callback();

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, issuer);
  const parts = url.pathname.split('/'); // ['', 'interaction', uid, ...]
  try {
    if (parts[1] === 'interaction' && parts[2]) return await interaction(req, res, parts);
    if (url.pathname === '/__test/counters' && req.method === 'GET') {
      return send(res, 200, 'application/json', JSON.stringify({ counters, lastErrors }));
    }
    if (url.pathname === '/__test/grants' && req.method === 'GET') {
      return send(res, 200, 'application/json', JSON.stringify(grants));
    }
    return handleProvider(req, res);
  } catch (err) {
    counters.server_error += 1;
    noteError('interaction', err);
    if (!res.headersSent) send(res, 400, 'text/html; charset=utf-8', page('IdP error', `<h1>IdP error</h1><p class="err">${esc(err.message)}</p>`));
    else res.end();
  }
});

server.listen(port, '127.0.0.1', () => {
  console.log(`idp listening on ${issuer} (oidc-provider, access token ttl ${accessTokenTTL}s)`);
});

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => { server.close(); process.exit(0); });
