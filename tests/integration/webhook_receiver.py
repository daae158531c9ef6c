#!/usr/bin/env python3
"""A webhook receiver for the integration tests, on the standard library alone.

    webhook_receiver.py CERT KEY SECRET OUT

Listens with HTTPS (the certificate and key given) on 127.0.0.1 and a free port, printed as
"PORT <n>" once it listens. Each POST is checked against SECRET with torii's webhook signature
(docs/notifications.md: X-Torii-Signature = "v1=" + hex HMAC-SHA256(secret, timestamp + "." +
body), the timestamp within 5 minutes) and appended to OUT as one JSON line:
{"valid": true|false, "body": "<the body>"}. Every POST is answered 200. It runs until the
test ends it."""
import hashlib
import hmac
import json
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

cert, key, secret, out = sys.argv[1:5]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (the standard library's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        timestamp = self.headers.get("X-Torii-Timestamp", "")
        signature = self.headers.get("X-Torii-Signature", "")
        mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) < 300
        valid = fresh and hmac.compare_digest("v1=" + mac, signature)
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps({"valid": valid, "body": body.decode("utf-8", "replace")}) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
# One write, so a reader never sees half of the line.
sys.stdout.write(f"PORT {server.server_address[1]}\n")
sys.stdout.flush()
server.serve_forever()
