// Prints N distinct free TCP ports on 127.0.0.1, space separated. All sockets
// are held open until every port is known, so the ports are distinct.
import net from 'node:net';

const n = Number(process.argv[2] || 1);
const servers = [];
for (let i = 0; i < n; i += 1) {
  servers.push(await new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolve(s));
  }));
}
const ports = servers.map((s) => s.address().port);
await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
console.log(ports.join(' '));
