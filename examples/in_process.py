"""gearjobs in process: run a job once per request id, join it, and replay it.

Run it with `python examples/in_process.py`.
"""

from __future__ import annotations

import asyncio

from gearjobs import ClientResponse, Dispatcher, RequestIdentifier, Response, ResponseSuccess


class Countdown:
    """A slow job that streams a line a tick; it counts its own runs to show exactly-once."""

    runs = 0

    def __init__(self, start: int) -> None:
        self.start = start

    def fingerprint(self) -> str:
        return f"countdown:{self.start}"

    async def execute(self, response: Response) -> None:
        Countdown.runs += 1
        response.write_pending_success("Ticks", self.start)
        writer = response.success_with_write(ResponseSuccess.OK, True, False)
        for n in range(self.start, 0, -1):
            writer.write(f"{n}...\n")
            await asyncio.sleep(0.05)
        writer.write("liftoff\n")


async def main() -> None:
    async with Dispatcher() as dispatcher:
        ident = RequestIdentifier.new()
        first = ClientResponse()
        handle = await dispatcher.dispatch(ident, Countdown(5), first)
        await asyncio.sleep(0.12)

        # A retry while the job runs joins it: it gets the stream from its first line.
        joined = ClientResponse()
        await dispatcher.dispatch(ident, Countdown(5), joined)
        await handle

        # A retry after it finished replays the recorded answer.
        replayed = ClientResponse()
        await (await dispatcher.dispatch(ident, Countdown(5), replayed))

        for label, response in [("first", first), ("joined", joined), ("replayed", replayed)]:
            text = response.data.getvalue().decode()
            print(f"{label:>8}: pending={response.pending} output={text.splitlines()}")
        print(f"the job ran {Countdown.runs} time(s) for request id {ident}")


if __name__ == "__main__":
    asyncio.run(main())
