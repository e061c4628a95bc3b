// The fan-out baseline: a minimal Node.js room server on the `ws` package,
// speaking the subset of modhost's client protocol that modhost-bench uses.
//
// - websocket at /ws/?token=T: first frame {"is_authorized":true,...};
//   {"type":"subscribe","room":{...},"requestId":"1"} -> {"code":"success","requestId":"1"};
//   {"type":"unsubscribe","requestId":"1"} -> {"code":"success",...};
//   deliveries {"type":"publish","data":...,"requestId":"1"}.
// - POST /trigger/ {"rooms":[...],"data":...} with Authorization: Bearer T
//   -> {"delivered":N}.
//
// What a straightforward Node server does, nothing more: a Map of room key
// -> Set of subscriptions, the data JSON.stringify'd once per publish, each
// subscriber's frame that string plus its requestId (precomputed at
// subscribe time). Rooms match exactly (no wildcards), there are no
// permissions and no limits.
//
// Usage: PORT=18081 TOKEN=bench-secret TRIGGER_TOKEN=trigger-secret node server.js

'use strict';

const http = require('http');
const { WebSocketServer } = require('ws');

const PORT = Number(process.env.PORT || 18081);
const HOST = process.env.HOST || '127.0.0.1';
const TOKENS = new Set((process.env.TOKEN || 'bench-secret').split(','));
const TRIGGER_TOKENS = new Set((process.env.TRIGGER_TOKEN || 'trigger-secret').split(','));

/** room key -> Set of {ws, suffix} */
const rooms = new Map();

// A room's key: its entries sorted by key, so key order does not matter.
function roomKey(room) {
  return JSON.stringify(Object.keys(room).sort().map((k) => [k, room[k]]));
}

function publish(roomList, data) {
  const prefix = '{"type":"publish","data":' + JSON.stringify(data) + ',"requestId":';
  let delivered = 0;
  const seen = roomList.length > 1 ? new Set() : null;
  for (const room of roomList) {
    const subs = rooms.get(roomKey(room));
    if (!subs) continue;
    for (const sub of subs) {
      if (seen) {
        if (seen.has(sub)) continue;
        seen.add(sub);
      }
      sub.ws.send(prefix + sub.suffix);
      delivered++;
    }
  }
  return delivered;
}

function bearer(req) {
  const h = req.headers.authorization || '';
  return h.startsWith('Bearer ') ? h.slice(7) : null;
}

function reply(res, status, body) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

const server = http.createServer((req, res) => {
  const path = req.url.split('?')[0];
  if (path === '/health') return reply(res, 200, { status: 'ok' });
  if (req.method !== 'POST' || (path !== '/trigger/' && path !== '/trigger')) {
    return reply(res, 404, 'not found');
  }
  if (!TRIGGER_TOKENS.has(bearer(req))) return reply(res, 401, 'missing or unknown trigger token');
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString());
    } catch (e) {
      return reply(res, 400, 'invalid JSON');
    }
    if (!Array.isArray(body.rooms)) return reply(res, 400, 'rooms not specified');
    if (body.data === undefined) return reply(res, 400, 'data not specified');
    reply(res, 200, { delivered: publish(body.rooms, body.data) });
  });
});

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });

server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname !== '/ws/' && url.pathname !== '/ws') {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    if (!TOKENS.has(url.searchParams.get('token'))) {
      ws.send('{"is_authorized":false}');
      ws.close(4001, 'unauthorized');
      return;
    }
    session(ws);
  });
});

function session(ws) {
  /** requestId -> {key, sub} */
  const subscriptions = new Map();
  ws.send(JSON.stringify({ is_authorized: true, allowed_rooms: [{ target: '*' }], user: 'bench' }));
  ws.on('message', (raw) => {
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch (e) {
      return ws.send('{"code":"error","message":"non-json-message"}');
    }
    const id = msg.requestId;
    switch (msg.type) {
      case 'subscribe': {
        if (id === undefined) return ws.send('{"code":"error","message":"no-request-id"}');
        if (!msg.room || typeof msg.room !== 'object' || Array.isArray(msg.room)) {
          return ws.send(JSON.stringify({ code: 'error', message: 'invalid-room', requestId: id }));
        }
        if (subscriptions.has(id)) {
          return ws.send(JSON.stringify({ code: 'error', message: 'request-id-in-use', requestId: id }));
        }
        const key = roomKey(msg.room);
        const sub = { ws, suffix: JSON.stringify(String(id)) + '}' };
        let set = rooms.get(key);
        if (!set) rooms.set(key, (set = new Set()));
        set.add(sub);
        subscriptions.set(id, { key, sub });
        return ws.send(JSON.stringify({ code: 'success', requestId: id }));
      }
      case 'unsubscribe': {
        const s = subscriptions.get(id);
        if (!s) return ws.send(JSON.stringify({ code: 'error', message: 'not-subscribed', requestId: id }));
        unsubscribe(s);
        subscriptions.delete(id);
        return ws.send(JSON.stringify({ code: 'success', requestId: id }));
      }
      default:
        return ws.send('{"code":"error","message":"message-type-not-allowed"}');
    }
  });
  ws.on('close', () => {
    for (const s of subscriptions.values()) unsubscribe(s);
    subscriptions.clear();
  });
  ws.on('error', () => {});
}

function unsubscribe({ key, sub }) {
  const set = rooms.get(key);
  if (!set) return;
  set.delete(sub);
  if (set.size === 0) rooms.delete(key);
}

server.listen(PORT, HOST, () => {
  console.log(`baseline listening on ${HOST}:${PORT} (pid ${process.pid})`);
});
