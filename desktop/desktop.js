// The agent desktop demo: signs in to the gateway's GWS JSON API the way a browser desktop
// does (Basic credentials once, on StartContactCenterSession; the JSESSIONID cookie after
// that), reads the agent's device and calls, and follows /v2/me/calls and /v2/me/channels
// over CometD (the npm `cometd` 9 library, as an ES module). Works on the gateway's own
// origin and from another one: every request is sent with `credentials: "include"`, so the
// gateway must list this page's origin in `legacy.allowed_origins` and, across sites, set its
// cookies `SameSite=None; Secure` (see the README, "Agent desktop demo").
import {CometD} from "./node_modules/cometd/cometd.js";

/** Call operations offered as buttons, shown when the call's capabilities include them. */
const CALL_OPERATIONS = [
    "Answer", "Hangup", "Hold", "Retrieve", "StartCallRecording", "StopCallRecording",
];
/** How many notifications the log keeps on the page. */
const LOG_LIMIT = 50;

const $ = (id) => document.getElementById(id);

/** What the page knows: the gateway, the CSRF token if any, the CometD client, the calls. */
const desk = {
    gateway: "",
    csrfToken: null,
    cometd: null,
    calls: new Map(),
};

/** Sends one request to the JSON API; resolves to the parsed body, rejects on statusCode != 0. */
async function api(method, path, body, extraHeaders = {}) {
    const headers = {Accept: "application/json", ...extraHeaders};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (desk.csrfToken && method !== "GET") headers["X-CSRF-TOKEN"] = desk.csrfToken;
    const response = await fetch(desk.gateway + path, {
        method,
        headers,
        credentials: "include",
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const token = response.headers.get("X-CSRF-TOKEN");
    if (token) desk.csrfToken = token;
    let json;
    try {
        json = await response.json();
    } catch {
        throw new Error(`${method} ${path}: HTTP ${response.status}`);
    }
    if (json.statusCode !== 0) {
        throw new Error(`${method} ${path}: statusCode ${json.statusCode} ${json.statusMessage ?? ""}`);
    }
    return json;
}

function showError(error) {
    const p = $("error");
    p.textContent = error ? String(error.message ?? error) : "";
    p.hidden = !error;
}

function setConnection(state, text) {
    const c = $("connection");
    c.dataset.state = state;
    c.textContent = text;
}

async function login(event) {
    event.preventDefault();
    showError(null);
    desk.gateway = $("gateway").value.replace(/\/+$/, "");
    const user = $("user").value;
    const basic = "Basic " + btoa(`${user}:${$("password").value}`);
    try {
        // Basic credentials once: the answer sets the JSESSIONID cookie every later request uses.
        await api("POST", "/api/v2/me",
            {operationName: "StartContactCenterSession", channels: ["voice"]},
            {Authorization: basic});
        const me = (await api("GET", "/api/v2/me?subresources=devices,calls")).user;
        $("agent-name").textContent = me.userName ?? user;
        const device = me.devices?.[0];
        $("agent-number").textContent = device ? `(${device.phoneNumber})` : "";
        showAgentState(device?.userState);
        showCalls(me.calls);
        for (const id of ["agent", "calls-section", "log-section"]) $(id).hidden = false;
        $("login-button").disabled = true;
        $("logout-button").disabled = false;
        connect($("transport").value);
    } catch (error) {
        showError(error);
    }
}

/** Replaces the calls shown with `calls` (from a GET). */
function showCalls(calls) {
    desk.calls.clear();
    for (const call of calls ?? []) desk.calls.set(call.id, {call, last: "GET"});
    renderCalls();
}

/** Reads the calls again: after a re-handshake, notifications may have been missed. */
async function reloadCalls() {
    try {
        showCalls((await api("GET", "/api/v2/me/calls?fields=*")).calls);
    } catch (error) {
        showError(error);
    }
}

/** Opens the CometD client on the chosen transport, with the session cookie only. */
function connect(transport) {
    const cometd = new CometD();
    if (transport === "long-polling") cometd.unregisterTransport("websocket");
    cometd.configure({url: `${desk.gateway}/api/v2/notifications`, logLevel: "warn"});
    // Subscriptions are made again after every (re-)handshake: CometD drops them on handshake.
    cometd.addListener("/meta/handshake", (reply) => {
        if (!reply.successful) {
            setConnection("failed", `handshake failed: ${reply.error ?? "no answer"}`);
            return;
        }
        cometd.batch(() => {
            cometd.subscribe("/v2/me/calls", onCallMessage);
            cometd.subscribe("/v2/me/channels", onChannelMessage);
        });
        // The gateway dropped the session (e.g. at its queue limit): catch up.
        if (reply.reestablish) reloadCalls();
    });
    cometd.addListener("/meta/subscribe", (reply) => {
        if (reply.successful && reply.subscription === "/v2/me/calls") {
            setConnection("connected", `connected (${cometd.getTransport().type})`);
        }
    });
    cometd.addListener("/meta/connect", (reply) => {
        if (!reply.successful && !cometd.isDisconnected()) setConnection("retrying", "reconnecting");
    });
    desk.cometd = cometd;
    setConnection("connecting", "connecting");
    cometd.handshake();
}

function onCallMessage(message) {
    const data = message.data ?? {};
    if (data.messageType === "ErrorMessage") {
        // An operation the gateway accepted failed afterwards (a busy number, say): the
        // call's own notifications came first, so this only tells the agent.
        logNotification(`ErrorMessage ${data.operationName ?? ""} ${data.errorCode}: ${data.errorMessage}`);
        return;
    }
    const {notificationType, call} = data;
    if (!call) return;
    logNotification(`${notificationType} ${call.id} ${call.state}` +
        (call.recordingState ? ` recording ${call.recordingState}` : ""));
    if (call.state === "Released") {
        desk.calls.delete(call.id);
    } else {
        desk.calls.set(call.id, {call, last: notificationType});
    }
    renderCalls();
}

function onChannelMessage(message) {
    const voice = (message.data?.channels ?? []).find((c) => c.channel === "voice");
    if (voice) {
        logNotification(`${message.data.messageType} ${voice.userState?.state}`);
        showAgentState(voice.userState);
    }
}

function showAgentState(userState) {
    $("agent-state").textContent = userState?.state ?? "unknown";
}

function logNotification(text) {
    const li = document.createElement("li");
    li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
    const log = $("log");
    log.prepend(li);
    while (log.children.length > LOG_LIMIT) log.lastElementChild.remove();
}

/** Redraws the calls table; one row per call, buttons for the operations it allows now. */
function renderCalls() {
    const tbody = $("calls").tBodies[0];
    tbody.replaceChildren();
    for (const {call, last} of desk.calls.values()) {
        const row = tbody.insertRow();
        row.dataset.callId = call.id;
        const other = (call.participants ?? []).map((p) => p.phoneNumber).join(", ");
        const cells = [call.id, other, call.state, call.recordingState ?? "—", last];
        const classes = ["id", "party", "state", "recording", "notification"];
        cells.forEach((text, i) => {
            const cell = row.insertCell();
            cell.className = classes[i];
            cell.textContent = text;
        });
        const actions = row.insertCell();
        actions.className = "actions";
        const allowed = new Set(call.capabilities ?? []);
        for (const op of CALL_OPERATIONS.filter((o) => allowed.has(o))) {
            const button = document.createElement("button");
            button.type = "button";
            button.textContent = op;
            button.dataset.op = op;
            button.addEventListener("click", () => callOperation(call.id, op));
            actions.append(button);
        }
    }
    $("no-calls").hidden = desk.calls.size > 0;
}

async function callOperation(id, operationName) {
    showError(null);
    try {
        await api("POST", `/api/v2/me/calls/${encodeURIComponent(id)}`, {operationName});
    } catch (error) {
        showError(error);
    }
}

async function agentState(operationName) {
    showError(null);
    try {
        await api("POST", "/api/v2/me/channels/voice", {operationName});
    } catch (error) {
        showError(error);
    }
}

async function logout() {
    showError(null);
    desk.cometd?.disconnect();
    desk.cometd = null;
    try {
        await api("POST", "/api/v2/me", {operationName: "EndContactCenterSession"});
    } catch (error) {
        showError(error);
    }
    setConnection("offline", "offline");
    showCalls([]);
    $("login-button").disabled = false;
    $("logout-button").disabled = true;
}

function init() {
    const params = new URLSearchParams(location.search);
    // Served by the gateway, the API is on the same origin; elsewhere ?gateway= names it.
    $("gateway").value = params.get("gateway") ?? (location.protocol.startsWith("http") ? location.origin : "");
    if (params.get("user")) $("user").value = params.get("user");
    if (params.get("transport")) $("transport").value = params.get("transport");
    $("login").addEventListener("submit", login);
    $("logout-button").addEventListener("click", logout);
    $("ready-button").addEventListener("click", () => agentState("Ready"));
    $("not-ready-button").addEventListener("click", () => agentState("NotReady"));
    document.body.dataset.ready = "true";
}

init();
