// Prints the run's summary: peer versions, peer checks, the scenario × door
// table and every failure with its recorded exchange. Exit code 1 on any
// failure. Also writes artifacts/summary.txt and artifacts/failures.txt.
//   node summary.mjs ARTIFACTS_DIR SECONDS

import fs from 'node:fs';
import path from 'node:path';

const [art, seconds] = process.argv.slice(2);
const read = (f, fallback) => {
  try { return JSON.parse(fs.readFileSync(path.join(art, f), 'utf8')); } catch { return fallback; }
};
const versions = read('versions.json', {});
const results = [...read('results-scenarios.json', []), ...read('results-browser.json', []), ...read('results-ops.json', []), ...read('results-harness.json', [])];
const doors = read('doors.json', []);

const lines = [];
const p = (s = '') => lines.push(s);
const pad = (s, n) => String(s).padEnd(n);

p('== peers ==');
for (const [k, v] of Object.entries(versions)) p(`  ${pad(k, 16)} ${v}`);

p('');
p('== peer checks ==');
for (const r of results.filter((x) => x.group !== 'gate')) p(`  ${pad(r.status === 'pass' ? 'pass' : 'FAIL', 5)} ${pad(r.scenario, 16)} ${pad(r.door, 9)} ${r.detail.split('\n')[0].slice(0, 110)}`);

p('');
p('== gateway scenarios ==');
const gate = results.filter((x) => x.group === 'gate');
const scenarios = [...new Set(gate.map((r) => r.scenario))];
p(`  ${pad('scenario', 12)}${doors.map((d) => pad(d, 9)).join('')}`);
for (const s of scenarios) {
  const cells = doors.map((d) => {
    const r = gate.find((x) => x.scenario === s && x.door === d);
    return pad(r ? (r.status === 'pass' ? 'pass' : 'FAIL') : '-', 9);
  });
  p(`  ${pad(s, 12)}${cells.join('')}`);
}
const notes = results.filter((r) => r.notes?.length);
if (notes.length) {
  p('');
  p('== notes (not failures) ==');
  for (const r of notes) for (const n of r.notes) p(`  ${r.scenario} [${r.door}]: ${n}`);
}

const failed = results.filter((r) => r.status !== 'pass');
const passed = results.length - failed.length;
const detail = [];
for (const r of failed) {
  detail.push(`---- FAIL ${r.group}/${r.scenario} [${r.door}]`);
  detail.push(r.detail);
  if (r.trace) detail.push(r.trace);
  detail.push('');
}
if (failed.length) {
  p('');
  p('== failures ==');
  // Identical reasons (e.g. "gateway not available") are printed once.
  const byReason = new Map();
  for (const r of failed) {
    const key = r.trace ? `${r.scenario}/${r.door}` : r.detail;
    if (!byReason.has(key)) byReason.set(key, []);
    byReason.get(key).push(r);
  }
  for (const [, rs] of byReason) {
    const r = rs[0];
    p(`-- ${rs.map((x) => `${x.scenario}[${x.door}]`).join(' ')}`);
    p(`   ${r.detail.split('\n').join('\n   ')}`);
    if (r.trace) p(r.trace.split('\n').slice(-40).map((l) => `   ${l}`).join('\n'));
  }
}
// The gate's own log for every gate with a failed scenario.
const gateOf = (door) => (door === 'proxy' ? 'oidcgate-proxy' : 'oidcgate-forward');
for (const g of [...new Set(failed.filter((r) => r.group === 'gate').map((r) => gateOf(r.door)))]) {
  let tail = '';
  try { tail = fs.readFileSync(path.join(art, 'logs', `${g}.log`), 'utf8').trimEnd().split('\n').slice(-15).join('\n'); } catch { /* not started */ }
  if (tail) {
    p('');
    p(`-- last lines of logs/${g}.log`);
    p(tail.split('\n').map((l) => `   ${l.slice(0, 300)}`).join('\n'));
  }
}
p('');
p(`duration: ${seconds}s; artifacts: ${art}`);
p(`e2e: ${passed} passed, ${failed.length} failed`);

const text = lines.join('\n');
console.log(text);
fs.writeFileSync(path.join(art, 'summary.txt'), `${text}\n`);
fs.writeFileSync(path.join(art, 'failures.txt'), detail.join('\n'));
process.exit(failed.length || !results.length ? 1 : 0);
