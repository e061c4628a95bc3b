// modhost from a browser page: log in with a token, subscribe to a room,
// call a command, and show replies, room messages (publishes) and pushes.
// Plain JavaScript for any static file server; the protocol is in
// docs/protocol.md.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  let ws = null;
  let nextId = 1;
  let keepAlive = null;

  function log(kind, text) {
    const line = document.createElement("div");
    line.className = kind;
    const arrow = { in: "← ", out: "→ ", note: "· ", bad: "! " }[kind] || "";
    line.textContent = arrow + text;
    $("log").appendChild(line);
    $("log").scrollTop = $("log").scrollHeight;
  }

  function send(frame) {
    const text = JSON.stringify(frame);
    ws.send(text);
    log("out", text);
  }

  function parseJson(id, what) {
    try {
      return JSON.parse($(id).value);
    } catch (e) {
      log("bad", `${what} is not JSON: ${e.message}`);
      return undefined;
    }
  }

  function connected(on) {
    $("connect").disabled = on;
    for (const id of ["disconnect", "subscribe", "call"]) $(id).disabled = !on;
  }

  // One frame from the host, in modhost.v1 (the dialect this page offers).
  function receive(text) {
    if (text === "pong") return; // the keep-alive answer, not JSON
    log("in", text);
    const msg = JSON.parse(text);
    if ("is_authorized" in msg) {
      $("who").textContent = msg.is_authorized
        ? `logged in as ${msg.user} (session ${msg.session}); may subscribe to ${JSON.stringify(msg.allowed_rooms)}`
        : "not authorized: the host closes the connection";
    } else if (msg.type === "resource_offer") {
      const offer = msg.modules.map(
        (m) => `${m.name} ${m.version}: ${m.commands.map((c) => c.name).join(", ")}`,
      );
      $("offer").textContent = "callable: " + offer.join(" · ");
    } else if (msg.type === "publish") {
      log("note", `room message for subscription ${msg.requestId}: ${JSON.stringify(msg.data)}`);
    } else if (msg.type === "push") {
      log("note", `push from ${msg.module}: ${JSON.stringify(msg.data)}`);
    } else if (msg.type === "reply") {
      log("note", `reply to call ${msg.requestId}${msg.done === false ? " (more to come)" : ""}: ${JSON.stringify(msg.result)}`);
    } else if (msg.type === "error") {
      log("bad", `call ${msg.requestId} failed: ${msg.code}: ${msg.message}`);
    } else if (msg.code === "error") {
      log("bad", `refused: ${msg.message}`);
    }
  }

  $("connect").onclick = () => {
    // Browsers cannot set an Authorization header on a websocket: the token
    // goes in the query (or the access_token cookie).
    const url = `${$("url").value}?token=${encodeURIComponent($("token").value)}`;
    ws = new WebSocket(url, "modhost.v1");
    log("note", `connecting to ${$("url").value}`);
    ws.onopen = () => {
      connected(true);
      log("note", `open, dialect ${ws.protocol || "legacy"}`);
      // Browsers send no websocket pings; without traffic the host closes
      // an idle connection after [server] idle_timeout_secs.
      keepAlive = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send("ping"), 60000);
    };
    ws.onmessage = (event) => receive(event.data);
    ws.onclose = (event) => {
      clearInterval(keepAlive);
      connected(false);
      $("who").textContent = "not connected";
      log("note", `closed: ${event.code} ${event.reason}`);
    };
    ws.onerror = () => log("bad", "connection failed (is the host running, and the URL right?)");
  };

  $("disconnect").onclick = () => ws && ws.close(1000, "bye");

  $("subscribe").onclick = () => {
    const room = parseJson("room", "the room");
    if (room !== undefined) send({ type: "subscribe", room, requestId: `sub-${nextId++}` });
  };

  $("call").onclick = () => {
    const params = parseJson("params", "params");
    if (params === undefined) return;
    send({
      type: "call",
      module: $("module").value,
      command: $("command").value,
      params,
      requestId: `call-${nextId++}`,
    });
  };
})();
