// The seed scenario with the legacy CometD JavaScript client 3.1 (CommonJS) in Node, the
// line GWS 8.5 pages embed. Same contract as ../cometd9/scenario.mjs:
// node scenario.js <http base url> <long-polling|websocket> <JSESSIONID>
"use strict";
const [base, transport, jsessionid] = process.argv.slice(2);
if (!base || !transport || !jsessionid) {
    console.log("FAIL usage: scenario.js <url> <long-polling|websocket> <jsessionid>");
    process.exit(64);
}
const fail = (reason, code = 1) => {
    console.log(`FAIL ${reason}`);
    process.exit(code);
};
setTimeout(() => fail("timed out"), 20000).unref();

const jar = {JSESSIONID: jsessionid};
const cookieHeader = () => Object.entries(jar).map(([k, v]) => `${k}=${v}`).join("; ");
require("cometd-nodejs-client").adapt({
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
        super(url, protocols, {headers: {Cookie: cookieHeader()}});
    }
};

const lib = require("cometd");
const AckExtension = require("cometd/AckExtension");
const cometd = new lib.CometD();
if (transport === "long-polling") {
    cometd.unregisterTransport("websocket");
}
cometd.registerExtension("ack", new AckExtension());
cometd.configure({url: `${base}/api/v2/notifications`, logLevel: "warn", maxNetworkDelay: 5000});

const received = [];
cometd.addListener("/meta/handshake", reply => {
    if (!reply.successful) fail(`handshake: ${JSON.stringify(reply)}`, 3);
    cometd.subscribe("/v2/me/calls", message => {
        received.push(message.data.notificationType);
        const data = message.data;
        if (data.notificationType === "CallRecordingStateChange" && data.call.recordingState === "Stopped") {
            const result = {transport: cometd.getTransport().getType(), received, message};
            console.log(`RESULT ${JSON.stringify(result)}`);
            cometd.disconnect(() => process.exit(0));
            setTimeout(() => process.exit(0), 2000).unref();
        }
    }, subscribeReply => {
        if (!subscribeReply.successful) fail(`subscribe: ${JSON.stringify(subscribeReply)}`, 4);
        console.log(`READY ${cometd.getTransport().getType()}`);
    });
});
cometd.handshake();
