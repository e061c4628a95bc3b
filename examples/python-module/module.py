"""An external modhost module in Python: websockets + PyNaCl.

    python module.py keygen pymod --out keys --verify-keys ../../verify_keys
    python module.py run ws://127.0.0.1:8080/module pymod --key keys/pymod.key

It signs every frame with its ed25519 key (the host checks it against
verify_keys/pymod.pub), verifies every host frame with the key the host
serves at /module/key, and serves three commands to users and modules:
`divide` (messidge's demo command), `count` (streams 1..n, then publishes
the total to the caller's room) and `ask_divide` (calls the host's
in-process `divide` module). See docs/protocol.md, "External modules".
"""
import argparse
import asyncio
import json
import os
import sys
import urllib.request
import uuid

import nacl.encoding
import nacl.signing
import websockets

B64 = nacl.encoding.Base64Encoder
MANIFEST = {"version": "1.0.0", "description": "divide, count and ask_divide, in Python",
            "commands": [
                {"name": "divide", "params": ["dividend", "divisor"]},
                {"name": "count", "params": ["n"], "streams": True},
                {"name": "ask_divide", "params": ["dividend", "divisor"]},
            ]}


def keygen(name, out, verify_keys):
    """<out>/<name>.key (0600, base64 seed) and a line in <verify_keys>/<name>.pub."""
    os.makedirs(out, exist_ok=True)
    os.makedirs(verify_keys, exist_ok=True)
    key = nacl.signing.SigningKey.generate()
    path = os.path.join(out, name + ".key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.encode(B64).decode() + "\n")
    with open(os.path.join(verify_keys, name + ".pub"), "a") as f:
        f.write(key.verify_key.encode(B64).decode() + "\n")
    print(path)


class Module:
    def __init__(self, url, name, key):
        self.url, self.name, self.key = url, name, key
        http = url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)
        with urllib.request.urlopen(http + "/key") as r:
            self.host_key = nacl.signing.VerifyKey(r.read().strip(), encoder=B64)
        self.waiting = {}  # resolve_id -> future of the host's answer

    async def send(self, message):
        """Signs and sends `message`; returns its resolve_id."""
        rid = str(uuid.uuid4())
        inner = json.dumps({**message, "origin": self.name, "resolve_id": rid})
        signed = self.key.sign(inner.encode(), encoder=B64).decode()
        await self.ws.send(json.dumps({"signed_msg": signed, "origin": self.name, "resolve_id": rid}))
        return rid

    async def request(self, message):
        """Sends `message` and waits for the host's answer to it."""
        future = asyncio.get_running_loop().create_future()
        rid = await self.send(message)
        self.waiting[rid] = future
        return await future

    def verified(self, text):
        """The host frame's signed content; refuses a frame the host did not sign."""
        frame = json.loads(text)
        inner = self.host_key.verify(frame["signed_msg"].encode(), encoder=B64)
        return json.loads(inner)

    async def handle(self, call):
        """Answers one call: `reply` (stream items with done false) or `error`."""
        cid, p = call["id"], call["params"]
        try:
            if call["command"] == "divide":
                result = {"quotient": p["dividend"] / p["divisor"]}
            elif call["command"] == "ask_divide":
                answer = await self.request({"type": "call_module", "module": "divide",
                                             "command": "divide", "params": p, "call": cid})
                if not answer["success"]:
                    raise ValueError(answer["reason"] + ": " + answer["description"])
                result = {"asked": "divide", "quotient": answer["result"]["quotient"]}
            else:  # count
                n = int(p["n"])
                for i in range(1, n):
                    await self.send({"type": "reply", "id": cid, "result": i, "done": False})
                room = {"target": "message", "customer": str(p.get("customer", "1"))}
                published = await self.request({"type": "publish", "rooms": [room],
                                                "data": {"counted": n}, "call": cid})
                if not published["success"]:
                    raise ValueError("publish refused: " + published["reason"])
                result = n
            await self.send({"type": "reply", "id": cid, "result": result})
        except Exception as e:  # the caller gets module-error with the reason
            await self.send({"type": "error", "id": cid, "code": "module-error",
                             "message": f"{type(e).__name__}: {e}"})

    async def run(self):
        async with websockets.connect(self.url, max_size=1 << 20) as self.ws:
            reader = asyncio.create_task(self.read())
            started = await self.request({"type": "module_start", "module_name": self.name})
            if started.get("status") != "recognized":
                sys.exit(f"not recognized: {started}")
            registered = await self.request({"type": "register", "manifest": MANIFEST})
            print(f"{self.name}: serving {registered.get('commands')} commands", flush=True)
            await reader

    async def read(self):
        async for text in self.ws:
            frame = self.verified(text)
            if frame.get("type") == "call":
                asyncio.create_task(self.handle(frame))
            elif frame.get("resolve_id") in self.waiting:
                self.waiting.pop(frame["resolve_id"]).set_result(frame)
            else:
                print("host says:", frame, file=sys.stderr, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen")
    k.add_argument("name")
    k.add_argument("--out", default=".")
    k.add_argument("--verify-keys", default="verify_keys")
    r = sub.add_parser("run")
    r.add_argument("url")
    r.add_argument("name")
    r.add_argument("--key", required=True)
    args = parser.parse_args()
    if args.cmd == "keygen":
        return keygen(args.name, args.out, args.verify_keys)
    with open(args.key) as f:
        key = nacl.signing.SigningKey(f.read().strip().encode(), encoder=B64)
    asyncio.run(Module(args.url, args.name, key).run())


if __name__ == "__main__":
    main()
