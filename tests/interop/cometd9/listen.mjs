// A desktop's notification side with the real CometD JavaScript client 9.0, for tests that
// drive the gateway step by step (tests/cometd_interop.rs, tests/cometd_devices_interop.rs).
// Usage: node listen.mjs <http base url> <long-polling|websocket> <JSESSIONID> <channel,...>
// Subscribes to every channel in its /meta/handshake listener (so again after a
// re-handshake) and then prints one line per event, in order:
//   READY {"transport":…,"handshakes":n,"reestablish":bool,"clientId":…}  all subscribed
//   MESSAGE {"channel":…,"data":…}                             a message on a channel
//   CONNECT_FAILED {"error":…,"advice":…}                      a failed /meta/connect reply
// A line "DISCONNECT" on stdin (or stdin closing) disconnects, prints "BYE" and exits 0.
// Any failure prints "FAIL <reason>" and exits non-zero.
import {desktopCometD, fail} from "./desktop.mjs";
import {createInterface} from "node:readline";

const [base, transport, jsessionid, channelList] = process.argv.slice(2);
if (!base || !transport || !jsessionid || !channelList) {
    console.log("FAIL usage: listen.mjs <url> <long-polling|websocket> <jsessionid> <channel,...>");
    process.exit(64);
}
const channels = channelList.split(",");
setTimeout(() => fail("timed out"), 60000).unref();

const cometd = desktopCometD(base, transport, jsessionid);

let handshakes = 0;
cometd.addListener("/meta/handshake", reply => {
    if (!reply.successful) fail(`handshake: ${JSON.stringify(reply)}`, 3);
    handshakes += 1;
    const round = handshakes;
    let pending = channels.length;
    for (const channel of channels) {
        cometd.subscribe(channel, message => {
            console.log(`MESSAGE ${JSON.stringify({channel: message.channel, data: message.data})}`);
        }, subscribeReply => {
            if (!subscribeReply.successful) fail(`subscribe: ${JSON.stringify(subscribeReply)}`, 4);
            pending -= 1;
            if (pending === 0 && round === handshakes) {
                const ready = {transport: cometd.getTransport().type, handshakes, reestablish: !!reply.reestablish, clientId: cometd.getClientId()};
                console.log(`READY ${JSON.stringify(ready)}`);
            }
        });
    }
});
cometd.addListener("/meta/connect", reply => {
    if (!reply.successful && reply.error) {
        console.log(`CONNECT_FAILED ${JSON.stringify({error: reply.error, advice: reply.advice})}`);
    }
});

const bye = () => cometd.disconnect(() => {
    console.log("BYE");
    process.exit(0);
});
const input = createInterface({input: process.stdin});
input.on("line", line => {
    if (line.trim() === "DISCONNECT") bye();
});
input.on("close", bye);
cometd.handshake();
