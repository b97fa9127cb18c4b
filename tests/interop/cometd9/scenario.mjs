// The seed scenario with the real CometD JavaScript client 9.0 (ESM) in Node.
// Usage: node scenario.mjs <http base url> <long-polling|websocket> <JSESSIONID>
// Prints "READY <transport>" once subscribed to /v2/me/calls, then
// "RESULT <json>" when the CallRecordingStateChange "Stopped" message arrives; exits 0.
// Any failure prints "FAIL <reason>" and exits non-zero. The test drives the calls.
import {desktopCometD, fail} from "./desktop.mjs";

const [base, transport, jsessionid] = process.argv.slice(2);
if (!base || !transport || !jsessionid) {
    console.log("FAIL usage: scenario.mjs <url> <long-polling|websocket> <jsessionid>");
    process.exit(64);
}
setTimeout(() => fail("timed out"), 20000).unref();

const cometd = desktopCometD(base, transport, jsessionid);

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
