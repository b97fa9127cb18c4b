// A desktop with the ack extension whose connection moves to another gateway instance
// (tests/cluster_cometd.rs): the real CometD JavaScript client 9.0 in Node, signing in
// with Basic on every request (long-polling requests and the WebSocket upgrade), as a
// desktop behind a load balancer that is sticky by the BAYEUX_BROWSER cookie.
// Usage: node moving.mjs <http base url> <long-polling|websocket> <authorization header>
// Prints one line per event, in order:
//   READY {"transport":…,"handshakes":n,"clientId":…}   subscribed to /v2/me/calls
//   MESSAGE {"channel":…,"data":…}                       a message
//   CONNECT_FAILED {"error":…,"advice":…}                a failed /meta/connect reply
// A line "DISCONNECT" on stdin disconnects, prints "BYE" and exits 0.
import {adapt} from "cometd-nodejs-client";
import {CometD, AckExtension} from "cometd";
import {createInterface} from "node:readline";

const [base, transport, authorization] = process.argv.slice(2);
if (!base || !transport || !authorization) {
    console.log("FAIL usage: moving.mjs <url> <long-polling|websocket> <authorization>");
    process.exit(64);
}
setTimeout(() => { console.log("FAIL timed out"); process.exit(1); }, 60000).unref();

// A browser's cookie jar for the one origin (the balancer's).
const jar = {};
adapt({
    cookies: {
        storeCookie(uri, header, callback) {
            const [pair] = header.split(";");
            const eq = pair.indexOf("=");
            if (eq > 0) jar[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
            callback();
        },
        retrieveCookies(context, uri, callback) {
            callback(null, Object.entries(jar).map(([k, v]) => `${k}=${v}`));
        },
    },
});
const NodeWebSocket = window.WebSocket;
window.WebSocket = class extends NodeWebSocket {
    constructor(url, protocols) {
        const cookie = Object.entries(jar).map(([k, v]) => `${k}=${v}`).join("; ");
        super(url, protocols, {headers: {Cookie: cookie, Authorization: authorization}});
    }
};
const cometd = new CometD();
if (transport === "long-polling") {
    cometd.unregisterTransport("websocket");
}
cometd.registerExtension("ack", new AckExtension());
cometd.configure({
    url: `${base}/api/v2/notifications`,
    logLevel: "warn",
    maxNetworkDelay: 3000,
    backoffIncrement: 100,
    maxBackoff: 500,
    requestHeaders: {Authorization: authorization},
});

let handshakes = 0;
cometd.addListener("/meta/handshake", reply => {
    if (!reply.successful) {
        console.log(`FAIL handshake: ${JSON.stringify(reply)}`);
        process.exit(3);
    }
    handshakes += 1;
    cometd.subscribe("/v2/me/calls", message => {
        console.log(`MESSAGE ${JSON.stringify({channel: message.channel, data: message.data})}`);
    }, subscribed => {
        if (!subscribed.successful) {
            console.log(`FAIL subscribe: ${JSON.stringify(subscribed)}`);
            process.exit(4);
        }
        const ready = {transport: cometd.getTransport().type, handshakes, clientId: cometd.getClientId()};
        console.log(`READY ${JSON.stringify(ready)}`);
    });
});
cometd.addListener("/meta/connect", reply => {
    if (!reply.successful && reply.error) {
        console.log(`CONNECT_FAILED ${JSON.stringify({error: reply.error, advice: reply.advice})}`);
    }
});
const input = createInterface({input: process.stdin});
input.on("line", line => {
    if (line.trim() !== "DISCONNECT") return;
    cometd.disconnect(() => {
        console.log("BYE");
        process.exit(0);
    });
});
cometd.handshake();
