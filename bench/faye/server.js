// The Bayeux baseline of the fan-out figure: a Faye 1.4 server (faye.NodeAdapter) on
// 127.0.0.1, mounted at the gateway's path, long-polling timeout as the gateway's (30 s).
// Usage: node server.js PORT
'use strict';
const http = require('http');
const faye = require('faye');

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node server.js PORT');
  process.exit(2);
}
const bayeux = new faye.NodeAdapter({ mount: '/api/v2/notifications', timeout: 30 });
const server = http.createServer();
bayeux.attach(server);
server.listen(port, '127.0.0.1', () => console.log(`faye listening on 127.0.0.1:${port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
