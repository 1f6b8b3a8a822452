"""A TCP relay on 127.0.0.1 that adds a fixed delay to every chunk, in each direction, in order.

The kernel has no netem here; this stands in for a slow path (a far-away region, a congested
proxy). It runs its own event loop in a thread; every connection and wait is bounded.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def delaying_relay(
    upstream_port: int,
    delay_s: float,
    *,
    drop_every: int | None = None,
    slow_every: int | None = None,
    slow_extra_s: float = 0.0,
    spare_first: int = 0,
) -> Iterator[int]:
    """Relay to ``upstream_port`` adding ``delay_s`` per chunk each way. ``drop_every=N`` hangs up on
    every Nth connection at once (a flaky path); ``slow_every=N`` adds ``slow_extra_s`` to every Nth
    connection's chunks (an occasional slow route); the first ``spare_first`` connections are spared."""
    loop = asyncio.new_event_loop()
    accepted = [0]
    ready = threading.Event()
    port: list[int] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def forward() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await asyncio.wait_for(writer.drain(), 10)

        sender = asyncio.create_task(forward())
        try:
            while True:
                data = await asyncio.wait_for(reader.read(65536), 60)
                await queue.put((loop.time() + delay, data))
                if not data:
                    break
            await asyncio.wait_for(sender, 10)
        except (OSError, TimeoutError):
            sender.cancel()
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        n = accepted[0]
        if drop_every and n > spare_first and n % drop_every == 0:
            writer.close()
            return
        delay = delay_s + (slow_extra_s if slow_every and n > spare_first and n % slow_every == 0 else 0.0)
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", upstream_port), 5)
        except (OSError, TimeoutError):
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer, delay), pipe(up_reader, writer, delay), return_exceptions=True)

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0))
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        loop.run_forever()
        server.close()
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0.05))
        loop.close()

    thread = threading.Thread(target=run, name="delaying-relay", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("relay did not start")
    try:
        yield port[0]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
