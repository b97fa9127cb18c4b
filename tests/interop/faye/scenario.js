// The seed scenario with Faye 1.4 (an independent Bayeux client). Same contract as
// ../cometd9/scenario.mjs: node scenario.js <http base url> <long-polling|websocket> <JSESSIONID>
// Faye handshakes over HTTP, then (websocket) opens a socket whose first frame is
// /meta/connect with the existing clientId; it batches its first connect with the subscribe.
"use strict";
const faye = require("faye");
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

const client = new faye.Client(`${base}/api/v2/notifications`, {timeout: 10, retry: 1});
if (transport === "long-polling") {
    client.disable("websocket");
}
// Faye keeps server cookies itself (tough-cookie); seed the login's session cookie.
client._dispatcher.cookies.setCookieSync(`JSESSIONID=${jsessionid}; Path=/`, base);
// Every connectionType the client's /meta/connect messages used, in order (a fallback
// from websocket to long-polling shows as a second entry), and the data messages as they
// arrived on the wire, with their channel (Faye's subscription callback gets data only).
const transports = [];
const wire = [];
client.addExtension({
    incoming(message, callback) {
        if (message.channel === "/meta/handshake" && !message.successful) {
            fail(`handshake: ${JSON.stringify(message)}`, 3);
        }
        if (!message.channel.startsWith("/meta/")) wire.push(message);
        callback(message);
    },
    outgoing(message, callback) {
        if (message.channel === "/meta/connect" && transports.at(-1) !== message.connectionType) {
            transports.push(message.connectionType);
        }
        callback(message);
    },
});

const received = [];
const subscription = client.subscribe("/v2/me/calls", data => {
    received.push(data.notificationType);
    if (data.notificationType === "CallRecordingStateChange" && data.call.recordingState === "Stopped") {
        const message = wire.findLast(m => m.data === data) ?? fail("the message is not on the wire");
        const result = {transport: transports.at(-1), transports, received, message};
        console.log(`RESULT ${JSON.stringify(result)}`);
        Promise.resolve(client.disconnect()).then(() => process.exit(0));
        setTimeout(() => process.exit(0), 2000).unref();
    }
});
subscription.then(
    () => console.log(`READY ${transport}`),
    error => fail(`subscribe: ${JSON.stringify(error)}`, 4),
);
