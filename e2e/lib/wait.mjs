// wait.mjs URL SECONDS [STATUS [PID]]: polls URL until it answers STATUS
// (default 200), for at most SECONDS. Exit 0 when it did, 1 when time ran
// out, 2 as soon as process PID (the server being waited for) has exited.
import fs from 'node:fs';
import http from 'node:http';

const [url, seconds = '20', want = '200', pid] = process.argv.slice(2);

function exited() {
  if (!pid) return false;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}
const deadline = Date.now() + Number(seconds) * 1000;

function probe() {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 2000, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

let last = 0;
while (Date.now() < deadline) {
  last = await probe();
  if (String(last) === want) process.exit(0);
  if (exited()) {
    console.error(`wait: the process serving ${url} has exited`);
    process.exit(2);
  }
  await new Promise((r) => setTimeout(r, 200));
}
console.error(`wait: ${url} did not answer ${want} within ${seconds}s (last: ${last || 'no connection'})`);
process.exit(1);
