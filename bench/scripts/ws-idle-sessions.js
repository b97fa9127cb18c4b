// Idle CometD WebSocket sessions against a running gateway: opens N sockets (the `ws`
// package that tests/interop/cometd9 installs), each handshaken, subscribed to
// /v2/me/calls and holding a connect, as users bench00000… of the bench's generated
// configuration (password "bench"), then prints the gateway's RSS before and after.
// Used for bench/FINDINGS.md, "Session 8":
//   voice-gateway --config WORK/bench-gateway.toml --http-listen 127.0.0.1:47002 ... &
//   node bench/scripts/ws-idle-sessions.js 47002 <gateway pid> 4000
// Bounded: N sockets, then exits.
const path = require('path');
const fs = require('fs');
const WebSocket = require(path.join(__dirname, '../../tests/interop/cometd9/node_modules/ws'));
const [port, pid, n] = [process.argv[2], process.argv[3], +process.argv[4]];
const rss = () => +fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1];
async function one(i) {
  const user = 'bench' + String(i).padStart(5, '0');
  const auth = 'Basic ' + Buffer.from(user + ':bench').toString('base64');
  const ws = new WebSocket(`ws://127.0.0.1:${port}/api/v2/notifications`, { headers: { authorization: auth } });
  await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); });
  const next = () => new Promise(res => ws.once('message', m => res(JSON.parse(m))));
  ws.send(JSON.stringify([{ id: '1', channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['websocket'] }]));
  const hs = (await next())[0];
  if (!hs.successful) throw new Error(JSON.stringify(hs));
  ws.send(JSON.stringify([{ id: '2', channel: '/meta/subscribe', clientId: hs.clientId, subscription: '/v2/me/calls' }]));
  await next();
  ws.send(JSON.stringify([{ id: '3', channel: '/meta/connect', clientId: hs.clientId, connectionType: 'websocket', advice: { timeout: 0 } }]));
  await next();
  ws.send(JSON.stringify([{ id: '4', channel: '/meta/connect', clientId: hs.clientId, connectionType: 'websocket' }]));
  return ws;
}
(async () => {
  // Let the start-up's garbage go back to the system before the first sample.
  await new Promise(r => setTimeout(r, 6000));
  const before = rss();
  const sockets = [];
  for (let i = 0; i < n; i += 50) {
    sockets.push(...await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, k) => one(i + k))));
  }
  await new Promise(r => setTimeout(r, 2000));
  const after = rss();
  console.log(`${sockets.length} sessions: RSS ${before} -> ${after} KiB, ${((after - before) / n).toFixed(2)} KiB per session`);
  process.exit(0);
})().catch(e => { console.error(e); process.exit(1); });
