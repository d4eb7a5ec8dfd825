"""``switchboard run`` with the Telegram channel's send pacing lifted (``--unpaced``).

    .venv/bin/python -m bench.pipeline.unpaced_gateway run --config C --port P

The channel keeps to Telegram's limits (``channels/telegram/pacing.py``): 30 sends a second
per bot, one a second per private chat. Under load every streamed preview and its final
edit are sends too, and the pacer holds one lock while it waits, so these limits shape what
the benchmark sees. To measure the rest of the pipeline apart from them, this launcher sets
the limits to none before the gateway builds the channel. Only the benchmark does this: a
real bot that sends faster is answered 429 by Telegram.
"""

from __future__ import annotations

from channels.telegram import pacing
from gateway.cli import main

if __name__ == "__main__":
    pacing.GLOBAL_PER_SECOND = None  # type: ignore[assignment]
    pacing.PRIVATE_INTERVAL_S = pacing.GROUP_INTERVAL_S = 0.0
    raise SystemExit(main())
