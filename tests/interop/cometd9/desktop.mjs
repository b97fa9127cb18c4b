// What listen.mjs and scenario.mjs share: a desktop's CometD 9 client in Node, configured
// like a browser page: the login's JSESSIONID and whatever cookies the server sets go out
// with every long-poll and with the WebSocket upgrade.
import {adapt} from "cometd-nodejs-client";
import {CometD, AckExtension} from "cometd";

// Prints "FAIL <reason>" and exits with `code`.
export const fail = (reason, code = 1) => {
    console.log(`FAIL ${reason}`);
    process.exit(code);
};

// Returns a configured (not yet handshaken) CometD client for `base` over `transport`
// (`long-polling` or `websocket`), with the ack extension.
export function desktopCometD(base, transport, jsessionid) {
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
    return cometd;
}
