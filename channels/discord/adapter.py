"""The Discord channel over discord.py: the Gateway in, the outbox out.

Inbound, discord.py keeps the Gateway connection (Hello, Identify with the GUILDS,
GUILD_MESSAGES, DIRECT_MESSAGES and MESSAGE_CONTENT intents, heartbeats, and on a drop a
Resume that replays what was missed); every message for the bot is handed to the host (the
inbox, which drops a replayed one by its id) in the order Discord sent them. Interactions
must be answered within 3 s: a button press is decided at once and answered with an
ephemeral message only the presser sees (if the decision is slow, it is deferred first and
the answer follows); ``/ask`` is deferred at once ("thinking...") and its answer, queued in
the outbox like any reply, replaces that placeholder.

Outbound, ``prepare`` renders a reply and splits it at 2,000 characters when it is queued,
so each chunk is its own outbox row; ``deliver`` sends one row, as a reply to the message it
answers, with a nonce that makes a repeated attempt return the message already made. 429s
shorter than 30 s are waited out by discord.py itself (same payload, same nonce), longer ones
come back as ``DeliveryRetry(retry_after)``; 5xx and network errors are retried, 4xx refused.

discord.py reads its REST base from ``discord.http.Route.BASE`` and opens the Gateway at
``DiscordWebSocket.DEFAULT_GATEWAY`` (it never asks ``GET /gateway/bot`` itself): both are set
from ``[channels.discord]`` before connecting, the Gateway URL from ``gateway_url`` or else
from ``GET /gateway/bot``. They are process-wide, so one process serves one Discord bot.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from channels.discord.normalize import (
    PLATFORM,
    command_question,
    interaction_data,
    normalize_command,
    normalize_message,
)
from channels.discord.outbound import NETWORK_ERRORS, DiscordOutbound, prepare_rows
from channels.discord.render import ASK_COMMAND_SPEC, parse_custom_id
from channels.health import ChannelHealth
from core.config import DiscordSection
from core.errors import DeliveryRetry
from core.ports import ChannelHost
from core.types import ConversationKey, InboundMessage, OutboundItem

log = logging.getLogger("switchboard.channels.discord")

INTENTS = discord.Intents(guilds=True, guild_messages=True, dm_messages=True, message_content=True)
MAX_RATELIMIT_WAIT_S = 30.0  # discord.py's smallest: longer 429s become DeliveryRetry
DECIDE_BUDGET_S = 2.0  # of Discord's 3 s to answer an interaction
MAX_BACKOFF_S = 60.0


class _GatewayClient(discord.Client):
    """discord.py's client; its events go to the channel."""

    def __init__(self, channel: DiscordChannel) -> None:
        super().__init__(
            intents=INTENTS,
            max_ratelimit_timeout=MAX_RATELIMIT_WAIT_S,
            max_messages=None,  # no message cache: the inbox keeps what matters
            chunk_guilds_at_startup=False,
        )
        self._channel = channel

    async def on_connect(self) -> None:
        self._channel.health.ok("connected")  # READY: identified

    async def on_resumed(self) -> None:
        self._channel.health.ok("connected")

    async def on_disconnect(self) -> None:
        if not self.is_closed():
            self._channel.health.failing("gateway connection lost; reconnecting")

    async def on_message(self, message: discord.Message) -> None:
        await self._channel.on_message(message)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        await self._channel.on_interaction(interaction)

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        log.exception("event=handler_failed channel=discord handler=%s", event_method)


class DiscordChannel:
    """One bot: the Gateway, sending, approval buttons, /ask, status."""

    name = PLATFORM

    def __init__(self, settings: DiscordSection) -> None:
        self._settings = settings
        # One Gateway connection per bot (without sharding): every replica's would receive
        # the same events.
        self.single_session = True
        self._client: _GatewayClient | None = None
        self._host: ChannelHost | None = None
        self._arrival = asyncio.Lock()  # FIFO: messages reach the inbox in Discord's order
        self._outbound = DiscordOutbound()
        self._gateway_url: str | None = None
        self.health = ChannelHealth("discord")

    # -- connection ------------------------------------------------------------------

    async def run(self, host: ChannelHost) -> None:
        """Log in, open the Gateway and feed every message to ``host`` until cancelled."""
        self._host = host
        Route.BASE = self._settings.api_base.rstrip("/")
        client = await self._logged_in_client()
        self._client = client
        try:
            self.health.state = "connecting"
            await client.connect(reconnect=True)  # reconnects and resumes by itself
        except discord.PrivilegedIntentsRequired:
            self.health.failing("the message content intent is not enabled for this bot")
            raise
        except discord.ConnectionClosed as exc:
            self.health.failing(f"the gateway closed the connection ({exc.code}): {exc.reason}")
            raise
        finally:
            self._client = None
            await client.close()

    async def _logged_in_client(self) -> _GatewayClient:
        backoff = 1.0
        while True:
            client = _GatewayClient(self)
            try:
                await client.login(self._settings.token.reveal())
                await self._point_gateway(client)
            except discord.LoginFailure:
                self.health.failing("unauthorized: check [channels.discord] token")
                await client.close()
                raise
            except (discord.HTTPException, discord.GatewayNotFound, *NETWORK_ERRORS) as exc:
                self.health.failing(f"cannot reach Discord: {exc}")
                await client.close()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            await self._register_commands(client)
            return client

    async def _point_gateway(self, client: _GatewayClient) -> None:
        url = self._settings.gateway_url
        if not url:
            _, url, _ = await client.http.get_bot_gateway()
        # discord.py has no parameter for it: its first connection (and any after an
        # invalidated session) goes to this class attribute; resumes use READY's URL.
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
        self._gateway_url = url

    async def _register_commands(self, client: _GatewayClient) -> None:
        if client.application_id is None:
            return
        try:  # a bulk overwrite: the same on every start, so idempotent
            await client.http.bulk_upsert_global_commands(client.application_id, [ASK_COMMAND_SPEC])
        except (discord.HTTPException, *NETWORK_ERRORS) as exc:
            log.warning("event=commands_not_registered channel=discord problem=%r", str(exc))

    # -- inbound ---------------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        """A message for the bot goes to the host; everything else is ignored."""
        client = self._client
        if client is None or client.user is None:
            return
        inbound = normalize_message(message, bot_id=client.user.id)
        if inbound is not None:
            await self._receive(inbound)

    async def _receive(self, inbound: InboundMessage) -> None:
        if self._host is None:
            raise RuntimeError("the Discord channel is not running")
        async with self._arrival:
            await self._host.receive(inbound)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Button presses are decisions; ``/ask`` is a question."""
        if interaction.type is discord.InteractionType.component:
            await self._on_button(interaction)
        elif interaction.type is discord.InteractionType.application_command:
            await self._on_command(interaction)

    async def _on_button(self, interaction: discord.Interaction) -> None:
        value = interaction_data(interaction).get("custom_id")
        parsed = parse_custom_id(value if isinstance(value, str) else None)
        if parsed is None or self._host is None:
            await interaction.response.send_message("This button is not mine.", ephemeral=True)
            return
        approval_id, approve = parsed
        decision = asyncio.ensure_future(
            self._host.decide(
                approval_id=approval_id,
                approve=approve,
                decider=f"{PLATFORM}:{interaction.user.id}",
            )
        )
        try:
            done, _ = await asyncio.wait({decision}, timeout=DECIDE_BUDGET_S)
            if decision in done:
                # Only the presser sees it: a refusal, or the confirmation.
                text = decision.result().message[:2000]
                await interaction.response.send_message(text, ephemeral=True)
                return
            await interaction.response.defer()  # DEFERRED_UPDATE_MESSAGE, before the 3 s
            outcome = await decision
            await interaction.followup.send(outcome.message[:2000], ephemeral=True)
        finally:
            decision.cancel()  # a no-op once decided; stops it if this handler is cancelled

    async def _on_command(self, interaction: discord.Interaction) -> None:
        question = command_question(interaction)
        if question is None:
            await interaction.response.send_message(
                "Ask me with /ask question:<what you want to know>.", ephemeral=True
            )
            return
        try:
            # "thinking..." at once: the answer may take longer than Discord's 3 s.
            await interaction.response.defer(thinking=True)
        except discord.HTTPException as exc:  # replayed after a resume: answered before
            log.info("event=interaction_not_deferred channel=discord problem=%r", exc.text)
        else:
            self._outbound.awaiting_answer(interaction)
        await self._receive(normalize_command(interaction, question=question))

    # -- outbound --------------------------------------------------------------------

    def prepare(self, item: OutboundItem) -> list[OutboundItem]:
        """A reply rendered and split into rows of at most one Discord message each."""
        return prepare_rows(item)

    async def deliver(self, item: OutboundItem, *, edit_message_id: str | None) -> str:
        """Send one outbox row; returns ``channel_id:message_id``."""
        client = self._client
        if client is None or client.user is None:
            raise DeliveryRetry("Discord is not connected yet")
        return await self._outbound.deliver(client, item, edit_message_id=edit_message_id)

    async def preview(
        self, key: ConversationKey, text: str, *, message_id: str | None, in_reply_to: str | None
    ) -> str:
        """Show an answer while it streams: sent once, then edited; returns its ref."""
        client = self._client
        if client is None or client.user is None:
            raise DeliveryRetry("Discord is not connected yet")  # the preview is dropped
        return await self._outbound.preview(
            client, key, text, message_id=message_id, in_reply_to=in_reply_to
        )

    async def typing(self, key: ConversationKey) -> None:
        """Show "typing..." while an answer is being prepared (best effort)."""
        client = self._client
        if client is not None and client.user is not None:
            await self._outbound.typing(client, key)

    # -- health ----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """State for ``/api/channels`` and ``/readyz``."""
        client = self._client
        user = client.user if client is not None else None
        return {
            "name": PLATFORM,
            **self.health.as_dict(),
            "bot": user.name if user is not None else None,
            "gateway": self._gateway_url,
        }

    async def close(self) -> None:
        """Close the Gateway connection and the HTTP session."""
        client = self._client
        if client is not None and not client.is_closed():
            await client.close()
        self.health.stopped()
