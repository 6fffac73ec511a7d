// Operating the gate, against a real Prometheus and a real Redis:
//   ops/promtool          `promtool check metrics` accepts the exposition
//   ops/prometheus        Prometheus scraped the gate during the suite and its
//                         own API answers the Redis guide's four names
//                         (metricsPrefix: traefikoidc)
//   ops/health-redis      the health JSON reports Redis down within one health
//                         interval after it is killed, healthy again after it
//                         returns (bounded polls)
// Results are appended as JSON to E2E_RESULTS.

import fs from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { until } from './http.mjs';

const cfg = JSON.parse(fs.readFileSync(process.env.E2E_CONFIG, 'utf8'));
const ops = cfg.ops;
const results = [];

function record(scenario, status, detail) {
  results.push({ group: 'ops', scenario, door: 'ops', status, detail, notes: [] });
  process.stdout.write(`  ${status === 'pass' ? 'pass' : 'FAIL'}  ops/${scenario} ${detail}\n`);
}

async function health() {
  const r = await fetch(`${ops.metrics}/healthz`, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(2000) });
  return r.json();
}

async function promtool() {
  // Without an Accept header the gate answers the classic text format.
  const text = await (await fetch(`${ops.metrics}/metrics`)).text();
  const out = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (out.error) throw new Error(`promtool cannot run: ${out.error.message}`);
  if (out.status !== 0) throw new Error(`promtool check metrics failed: ${(out.stdout + out.stderr).trim().slice(0, 300)}`);
  const families = text.split('\n').filter((l) => l.startsWith('# TYPE ')).length;
  return `promtool check metrics accepts ${families} families`;
}

async function prometheus() {
  const want = ['traefikoidc_cache_hits_total', 'traefikoidc_cache_requests_total', 'traefikoidc_redis_operation_duration_seconds', 'traefikoidc_circuit_breaker_state'];
  const api = async (path) => {
    const r = await fetch(`${ops.prometheus}/api/v1/${path}`, { signal: AbortSignal.timeout(3000) });
    const body = await r.json();
    if (body.status !== 'success') throw new Error(JSON.stringify(body));
    return body.data;
  };
  // The target is up, scraped by Prometheus itself.
  const [up] = await until(30000, async () => {
    const d = await api(`query?query=${encodeURIComponent(`up{job="oidcgate"}`)}`);
    return d.result.length && d.result[0].value[1] === '1' ? d : undefined;
  }, 500);
  if (!up) throw new Error('Prometheus never scraped the gate (up{job="oidcgate"} != 1 after 30 s)');
  // Each guide name is known to Prometheus: as a series name, or (the
  // histogram) as a metric family in its metadata.
  const [missing] = await until(20000, async () => {
    const names = new Set(await api('label/__name__/values'));
    const meta = await api('metadata');
    const left = want.filter((n) => !names.has(n) && !(n in meta) && !names.has(`${n}_bucket`));
    if (!left.length) return [];
    return undefined;
  }, 500);
  if (!missing) throw new Error(`Prometheus lacks some of ${want.join(', ')}`);
  const sample = await api(`query?query=${encodeURIComponent('sum(traefikoidc_cache_requests_total)')}`);
  return `Prometheus scraped the gate; its API has ${want.join(', ')} (cache requests so far: ${sample.result[0]?.value[1] ?? 0})`;
}

async function healthRedis() {
  const interval = ops.healthInterval * 1000;
  const [ok] = await until(15000, async () => {
    const h = await health();
    return h.status === 'healthy' && h.cache?.redis?.connected === true ? h : undefined;
  });
  if (!ok) throw new Error(`not healthy before the test: ${JSON.stringify(await health().catch((e) => e.message))}`);

  process.kill(-ops.redisPid, 'SIGKILL');
  // One interval, plus the time of one check and one poll.
  const [down, tDown] = await until(interval + 1500, async () => {
    const h = await health();
    return h.cache?.redis?.connected === false && h.status !== 'healthy' ? h : undefined;
  });
  if (!down) throw new Error(`Redis killed, but the health report did not say so within ${interval + 1500} ms`);

  const redis = spawn('redis-server', ['--port', String(ops.redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    detached: true, stdio: 'ignore',
  });
  try {
    const [back, tBack] = await until(interval + 5000, async () => {
      const h = await health();
      return h.status === 'healthy' && h.cache?.redis?.connected === true ? h : undefined;
    });
    if (!back) throw new Error(`Redis back, but the health report stayed ${JSON.stringify(await health().catch((e) => e.message))}`);
    return `Redis killed: "${down.status}" with connected=false after ${tDown} ms (interval ${interval} ms); restarted: healthy after ${tBack} ms`;
  } finally {
    try { process.kill(-redis.pid, 'SIGTERM'); } catch { /* already gone */ }
  }
}

if (!ops || cfg.gates.ops !== 'ok') {
  record('ops', 'fail', `ops gate not available: ${ops ? cfg.gates.ops : 'not configured'}`);
} else {
  for (const [name, fn] of [['promtool', promtool], ['prometheus', prometheus], ['health-redis', healthRedis]]) {
    try {
      record(name, 'pass', await fn());
    } catch (err) {
      record(name, 'fail', err.message.split('\n')[0]);
    }
  }
}
fs.writeFileSync(process.env.E2E_RESULTS, JSON.stringify(results, null, 2));
