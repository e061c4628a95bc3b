"""The uWebSockets baseline: the same room server as ../baseline/server.js,
on uWebSockets through socketify (PyPI; its C++ core does the websocket
work and the pub/sub), speaking the subset of modhost's client protocol
that modhost-bench uses.

- websocket at /ws/?token=T: first frame {"is_authorized":true,...};
  {"type":"subscribe","room":{...},"requestId":"1"} -> {"code":"success","requestId":"1"};
  {"type":"unsubscribe","requestId":"1"} -> {"code":"success",...};
  deliveries {"type":"publish","data":...,"requestId":"1"}.
- POST /trigger/ {"rooms":[...],"data":...} with Authorization: Bearer T
  -> {"delivered":N}.
- GET /health -> {"status":"ok"}.

Publishing uses uWS's native pub/sub (`App.publish`, one call per topic,
the fan-out loop in C++), which is what makes this baseline what it is.
A native publish sends the same bytes to every subscriber of a topic, but
each delivery carries the subscriber's own requestId, so a topic is a
(room, requestId) pair: a publish to a room is one native publish per
distinct requestId subscribed to it (one, for modhost-bench, which always
subscribes with requestId "1"). Python keeps only how many subscribers
each topic has, for the `delivered` count.

Differences from the Node baseline, on purpose or forced by native
pub/sub: a publish to several rooms is not de-duplicated (a socket in
two of them gets it twice; modhost-bench publishes to one room); rooms
match exactly, no permissions, no limits. The send buffer per socket is
raised to 64 MiB (`max_backpressure`): uWS drops a publish for a socket
over it, and the burst fan-out must not lose deliveries (modhost queues
up to `send_queue` frames, Node buffers without bound).

Usage: PORT=18082 TOKEN=bench-secret TRIGGER_TOKEN=trigger-secret python server.py
"""

import json
import os

from socketify import App, CompressOptions, OpCode

PORT = int(os.environ.get("PORT", "18082"))
HOST = os.environ.get("HOST", "127.0.0.1")
TOKENS = set(os.environ.get("TOKEN", "bench-secret").split(","))
TRIGGER_TOKENS = set(os.environ.get("TRIGGER_TOKEN", "trigger-secret").split(","))

HELLO = json.dumps(
    {"is_authorized": True, "allowed_rooms": [{"target": "*"}], "user": "bench"},
    separators=(",", ":"),
)


def dumps(value):
    return json.dumps(value, separators=(",", ":"))


# room key -> {requestId: subscribers}; a topic is room key + "\0" + requestId.
rooms = {}


def room_key(room):
    """A room's key: its entries sorted by key, so key order does not matter."""
    return dumps(sorted(room.items()))


def topic(key, rid):
    return key + "\0" + rid


def publish(room_list, data):
    prefix = '{"type":"publish","data":' + dumps(data) + ',"requestId":'
    delivered = 0
    for room in room_list:
        if not isinstance(room, dict):
            continue
        key = room_key(room)
        for rid, count in rooms.get(key, {}).items():
            app.publish(topic(key, rid), prefix + dumps(rid) + "}", OpCode.TEXT)
            delivered += count
    return delivered


def forget(key, rid):
    ids = rooms.get(key)
    if ids is None:
        return
    ids[rid] -= 1
    if ids[rid] == 0:
        del ids[rid]
        if not ids:
            del rooms[key]


def reply(res, status, body):
    text = body if isinstance(body, str) else dumps(body)
    res.write_status(status)
    res.write_header("Content-Type", "application/json")
    res.end(text)


def health(res, req):
    reply(res, 200, {"status": "ok"})


def trigger(res, req):
    auth = req.get_header("authorization") or ""
    token = auth[7:] if auth.startswith("Bearer ") else None
    if token not in TRIGGER_TOKENS:
        reply(res, 401, "missing or unknown trigger token")
        return
    chunks = []

    def on_data(res, chunk, is_end):
        if chunk:
            chunks.append(chunk)
        if not is_end:
            return
        try:
            body = json.loads(b"".join(chunks))
        except ValueError:
            reply(res, 400, "invalid JSON")
            return
        if not isinstance(body, dict) or not isinstance(body.get("rooms"), list):
            reply(res, 400, "rooms not specified")
            return
        if "data" not in body:
            reply(res, 400, "data not specified")
            return
        reply(res, 200, {"delivered": publish(body["rooms"], body["data"])})

    res.on_data(on_data)


def upgrade(res, req, context):
    # The subprotocol the client offers (modhost.v1) is not chosen: like
    # the Node baseline, this server speaks one dialect.
    state = {"authorized": req.get_query("token") in TOKENS, "subs": {}}
    res.upgrade(
        req.get_header("sec-websocket-key"),
        "",
        req.get_header("sec-websocket-extensions"),
        context,
        state,
    )


def ws_open(ws):
    if not ws.get_user_data()["authorized"]:
        ws.send('{"is_authorized":false}', OpCode.TEXT)
        ws.end(4001, "unauthorized")
        return
    ws.send(HELLO, OpCode.TEXT)


def ws_message(ws, raw, opcode):
    state = ws.get_user_data()
    if not state["authorized"]:
        return
    try:
        msg = json.loads(raw)
    except ValueError:
        ws.send('{"code":"error","message":"non-json-message"}', OpCode.TEXT)
        return
    if not isinstance(msg, dict):
        ws.send('{"code":"error","message":"non-json-message"}', OpCode.TEXT)
        return
    rid = msg.get("requestId")
    subs = state["subs"]
    kind = msg.get("type")
    if kind == "subscribe":
        if rid is None:
            ws.send('{"code":"error","message":"no-request-id"}', OpCode.TEXT)
            return
        room = msg.get("room")
        if not isinstance(room, dict):
            ws.send(dumps({"code": "error", "message": "invalid-room", "requestId": rid}), OpCode.TEXT)
            return
        rid_s = str(rid)
        if rid_s in subs:
            ws.send(dumps({"code": "error", "message": "request-id-in-use", "requestId": rid}), OpCode.TEXT)
            return
        key = room_key(room)
        ws.subscribe(topic(key, rid_s))
        ids = rooms.setdefault(key, {})
        ids[rid_s] = ids.get(rid_s, 0) + 1
        subs[rid_s] = key
        ws.send(dumps({"code": "success", "requestId": rid}), OpCode.TEXT)
    elif kind == "unsubscribe":
        rid_s = str(rid)
        key = subs.pop(rid_s, None)
        if key is None:
            ws.send(dumps({"code": "error", "message": "not-subscribed", "requestId": rid}), OpCode.TEXT)
            return
        ws.unsubscribe(topic(key, rid_s))
        forget(key, rid_s)
        ws.send(dumps({"code": "success", "requestId": rid}), OpCode.TEXT)
    else:
        ws.send('{"code":"error","message":"message-type-not-allowed"}', OpCode.TEXT)


def ws_close(ws, code, message):
    # uWS drops the socket's topics itself; only the counts are ours.
    state = ws.get_user_data()
    if state is None:
        return
    for rid_s, key in state["subs"].items():
        forget(key, rid_s)
    state["subs"].clear()


app = App()
app.get("/health", health)
app.post("/trigger/", trigger)
app.post("/trigger", trigger)
behaviour = {
    "compression": CompressOptions.DISABLED,
    "max_payload_length": 64 * 1024,
    # 0: no idle timeout and no pings, like the Node baseline (modhost's
    # bench config sets a one-hour idle timeout).
    "idle_timeout": 0,
    "max_backpressure": 64 * 1024 * 1024,
    "upgrade": upgrade,
    "open": ws_open,
    "message": ws_message,
    "close": ws_close,
}
app.ws("/ws/", behaviour)
app.ws("/ws", behaviour)
app.any("/*", lambda res, req: reply(res, 404, "not found"))
app.listen(
    {"port": PORT, "host": HOST},
    lambda config: print(f"uws baseline listening on {HOST}:{PORT} (pid {os.getpid()})", flush=True),
)
app.run()
