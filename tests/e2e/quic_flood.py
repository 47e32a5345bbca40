"""Parks out-of-order data on every stream of several QUIC connections to the gateway
(tests/e2e/attack.rs, api.md revision 4 "Transport bounds"): each stream's byte 0 is
withheld and the rest sent, so a server that buffers what the client may send holds it
all before any HTTP/3 layer sees a byte. aioquic sends in order; the first byte of each
stream is taken out of its send queue, which is the only change to what it does.

Usage: quic_flood.py HOST PORT CONNECTIONS STREAMS BYTES SECONDS
Prints `sent N` (bytes sent beyond each stream's first) once nothing more goes out or
SECONDS pass, then holds the connections open until standard input closes.
"""

import asyncio
import ssl
import sys
import time

from aioquic.asyncio import connect
from aioquic.quic.configuration import QuicConfiguration


async def flood(host, port, streams, size, seconds, sent, ready):
    config = QuicConfiguration(alpn_protocols=["h3"], is_client=True)
    config.verify_mode = ssl.CERT_NONE
    config.max_data = 1 << 20
    config.idle_timeout = 60.0
    async with connect(host, port, configuration=config) as client:
        quic = client._quic
        senders = []
        for _ in range(streams):
            sid = quic.get_next_available_stream_id()
            quic.send_stream_data(sid, b"\0" * size, end_stream=False)
            sender = quic._streams[sid].sender
            sender._pending.subtract(0, 1)  # byte 0 withheld: the rest is out of order
            senders.append(sender)
        client.transmit()
        last, still = -1, time.monotonic()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            client.transmit()
            now = sum(max(s.highest_offset - 1, 0) for s in senders)
            if now != last:
                last, still = now, time.monotonic()
            elif time.monotonic() - still > 1.0:
                break
        sent.append(last)
        ready.set_result(None) if not ready.done() else None
        await ready_to_close()


_close = None


async def ready_to_close():
    await _close


async def main():
    global _close
    host, port = sys.argv[1], int(sys.argv[2])
    conns, streams, size, seconds = (int(a) for a in sys.argv[3:7])
    loop = asyncio.get_running_loop()
    _close = loop.create_future()
    sent = []
    readies = [loop.create_future() for _ in range(conns)]
    tasks = [
        asyncio.create_task(flood(host, port, streams, size, seconds, sent, r))
        for r in readies
    ]
    await asyncio.wait(readies, timeout=seconds + 30)
    print(f"sent {sum(sent)}", flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    _close.set_result(None)
    await asyncio.wait(tasks, timeout=5)


asyncio.run(main())
