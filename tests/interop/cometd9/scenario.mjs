// The seed scenario with the real CometD JavaScript client 9.0 (ESM) in Node.
// Usage: node scenario.mjs <http base url> <long-polling|websocket> <JSESSIONID>
// Prints "READY <transport>" once subscribed to /v2/me/calls, then
// "RESULT <json>" when the CallRecordingStateChange "Stopped" message arrives; exits 0.
// Any failure prints "FAIL <reason>" and exits non-zero. The test drives the calls.
import {adapt} from "cometd-nodejs-client";
import {CometD, AckExtension} from "cometd";

const [base, transport, jsessionid] = process.argv.slice(2);
if (!base || !transport || !jsessionid) {
    console.log("FAIL usage: scenario.mjs <url> <long-polling|websocket> <jsessionid>");
    process.exit(64);
}
const fail = (reason, code = 1) => {
    console.log(`FAIL ${reason}`);
    process.exit(code);
};
setTimeout(() => fail("timed out"), 20000).unref();

// A browser-like cookie jar: the session cookie from the login, plus what the server sets.
const jar = {JSESSIONID: jsessionid};
const cookieHeader = () => Object.entries(jar).map(([k, v]) => `${k}=${v}`).join("; ");
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
// Browsers send the page's cookies with the WebSocket upgrade; the `ws` package needs telling.
const NodeWebSocket = window.WebSocket;
window.WebSocket = class extends NodeWebSocket {
    constructor(url, protocols) {
        super(url, protocols, {headers: {Cookie: cookieHeader()}});
    }
};

const cometd = new CometD();
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
            const result = {transport: cometd.getTransport().type, received, message};
            console.log(`RESULT ${JSON.stringify(result)}`);
            cometd.disconnect(() => process.exit(0));
            setTimeout(() => process.exit(0), 2000).unref();
        }
    }, subscribeReply => {
        if (!subscribeReply.successful) fail(`subscribe: ${JSON.stringify(subscribeReply)}`, 4);
        console.log(`READY ${cometd.getTransport().type}`);
    });
});
cometd.handshake();
