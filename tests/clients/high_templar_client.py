#!/usr/bin/env python3
"""A high-templar 3.x frontend, written only against high-templar's README,
with nothing but the Python standard library (RFC 6455 by hand).

It proves an existing client needs no change to work with modhost:
connect with ?token=, read allowed_rooms from the first message, subscribe
with a requestId, receive what /trigger/ publishes, ping/pong, unsubscribe.

usage: high_templar_client.py HOST:PORT USER_TOKEN TRIGGER_TOKEN
exits 0 and prints "ok" when every step behaved as the README says.
"""
import base64
import json
import os
import socket
import struct
import sys
import urllib.request


class WebSocket:
    def __init__(self, host, port, path):
        self.sock = socket.create_connection((host, port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise RuntimeError("connection closed during the handshake")
            head += chunk
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            raise RuntimeError(f"upgrade refused: {status!r}")

    def _read_exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise RuntimeError("connection closed")
            data += chunk
        return data

    def send_text(self, text):
        payload = text.encode()
        header = bytes([0x81])
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def recv_text(self):
        """The next text message (control frames are skipped)."""
        while True:
            b0, b1 = self._read_exact(2)
            opcode = b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read_exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read_exact(8))[0]
            payload = self._read_exact(n)
            if opcode == 0x1:
                return payload.decode()
            if opcode == 0x8:
                raise RuntimeError("server closed the connection")


def expect(condition, what):
    if not condition:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def trigger(addr, token, rooms, data):
    req = urllib.request.Request(
        f"http://{addr}/trigger/",
        data=json.dumps({"rooms": rooms, "data": data}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status


def main():
    addr, user_token, trigger_token = sys.argv[1:4]
    host, port = addr.rsplit(":", 1)
    ws = WebSocket(host, int(port), f"/ws/?token={user_token}")

    # "When a connection is created, the server responds with the allowed rooms."
    first = json.loads(ws.recv_text())
    expect(first.get("is_authorized") is True, f"authorized first message, got {first}")
    allowed = first.get("allowed_rooms")
    expect(isinstance(allowed, list) and allowed, "allowed_rooms listed")

    # Subscribe to a concrete room under an allowed wildcard pattern.
    room = {k: ("1" if v == "*" else v) for k, v in allowed[0].items()}
    ws.send_text(json.dumps({"type": "subscribe", "room": room, "requestId": "1"}))
    while True:
        reply = json.loads(ws.recv_text())
        # modhost sends no resource offer to a client that offers no
        # subprotocol (as this one); skipping one keeps the client tolerant.
        if reply.get("type") == "resource_offer":
            continue
        break
    expect(reply.get("code") == "success", f"subscribe success, got {reply}")

    # A room we were not given.
    ws.send_text(json.dumps({"type": "subscribe", "room": {"nope": "x"}, "requestId": "2"}))
    reply = json.loads(ws.recv_text())
    expect(reply.get("code") == "error" and reply.get("message") == "room-not-found", f"room-not-found, got {reply}")

    # Data sent to the room arrives with the subscription's requestId.
    expect(trigger(addr, trigger_token, [room], "Example text body") == 200, "trigger accepted")
    msg = json.loads(ws.recv_text())
    expect(msg.get("type") == "publish", f"publish frame, got {msg}")
    expect(msg.get("data") == "Example text body" and msg.get("requestId") == "1", f"data and requestId, got {msg}")

    # Ping pong, as raw text.
    ws.send_text("ping")
    expect(ws.recv_text() == "pong", "raw pong")

    # Unsubscribe, then nothing more arrives for that room.
    ws.send_text(json.dumps({"type": "unsubscribe", "requestId": "1"}))
    reply = json.loads(ws.recv_text())
    expect(reply.get("code") == "success", f"unsubscribe success, got {reply}")
    trigger(addr, trigger_token, [room], "after")
    ws.send_text("ping")
    expect(ws.recv_text() == "pong", "no publish after unsubscribe (pong came first)")
    print("ok")


if __name__ == "__main__":
    main()
