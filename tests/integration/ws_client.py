#!/usr/bin/env python3
"""A WebSocket client for the console's live view, built on the independent `websockets`
library (Debian's python3-websockets): connects, prints "open", then every text message on a
line of its own, and "closed <code> <reason>" when the server closes; "refused <status>" when
the opening handshake is answered with anything but 101. Ends by itself after `seconds`.

    ws_client.py URL CA_FILE SECONDS [--cookie VALUE] [--origin ORIGIN] [--bearer TOKEN]
"""
import argparse
import asyncio
import ssl
import sys

import websockets


async def watch(args):
    context = ssl.create_default_context(cafile=args.ca_file)
    headers = {}
    if args.cookie:
        headers["Cookie"] = "__Host-torii-session=" + args.cookie
    if args.bearer:
        headers["Authorization"] = "Bearer " + args.bearer
    try:
        ws = await websockets.connect(args.url, ssl=context, extra_headers=headers, origin=args.origin,
                                      open_timeout=10, close_timeout=5)
    except websockets.InvalidStatusCode as e:
        print(f"refused {e.status_code}", flush=True)
        return 2
    print("open", flush=True)
    try:
        async for message in ws:
            print(message, flush=True)
    except websockets.ConnectionClosed:
        pass
    print(f"closed {ws.close_code} {ws.close_reason}", flush=True)
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("ca_file")
    parser.add_argument("seconds", type=float)
    parser.add_argument("--cookie")
    parser.add_argument("--origin")
    parser.add_argument("--bearer")
    args = parser.parse_args()
    try:
        return asyncio.run(asyncio.wait_for(watch(args), args.seconds))
    except asyncio.TimeoutError:
        print("timed out", flush=True)
        return 3


if __name__ == "__main__":
    sys.exit(main())
