#!/usr/bin/env node
// A TCP proxy that adds a fixed delay to every request a client sends (every burst of bytes from the client side
// is held DELAY_MS before it is forwarded; answers come back at once), for benchmarks of remote reads over a
// "slow network" on loopback. The kernel here has no netem, hence this.
//
//   node scripts/bench/delay-proxy.js LISTEN_PORT TARGET_HOST:TARGET_PORT DELAY_MS
//
// Prints "listening PORT" on stdout once it accepts connections; counts requests and prints the total on SIGTERM.
'use strict';
const net = require('net');
const [listenPort, target, delayMs] = process.argv.slice(2);
if (!listenPort || !target || delayMs === undefined) {
  console.error('usage: delay-proxy.js LISTEN_PORT TARGET_HOST:TARGET_PORT DELAY_MS');
  process.exit(2);
}
const [host, port] = target.split(':');
const delay = Number(delayMs);
let requests = 0;
const server = net.createServer((client) => {
  client.setNoDelay(true);
  const upstream = net.connect({ host, port: Number(port) });
  upstream.setNoDelay(true);
  // Client bytes in order, each burst delayed: a queue drained by one timer at a time keeps the order.
  const queue = [];
  let draining = false;
  const drain = () => {
    if (queue.length === 0) { draining = false; return; }
    draining = true;
    const chunk = queue.shift();
    setTimeout(() => { upstream.write(chunk); drain(); }, delay);
  };
  client.on('data', (chunk) => { requests++; queue.push(chunk); if (!draining) drain(); });
  upstream.on('data', (chunk) => client.write(chunk));
  const close = () => { client.destroy(); upstream.destroy(); };
  client.on('error', close); upstream.on('error', close);
  client.on('close', close); upstream.on('close', close);
});
server.listen(Number(listenPort), '127.0.0.1', () => console.log(`listening ${server.address().port}`));
process.on('SIGTERM', () => { console.error(`delay-proxy: ${requests} client bursts forwarded`); process.exit(0); });
