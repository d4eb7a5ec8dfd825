"""The Telegram fake, driven by a real aiogram Bot over loopback HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message, ReplyParameters

from tests.fakes.server import serve_app
from tests.fakes.telegram_api import FakeTelegram, make_app

TOKEN = "123456:TEST-token"
CHAT = 42


@pytest.fixture
async def fake() -> FakeTelegram:
    return FakeTelegram(TOKEN)


@pytest.fixture
async def url(fake: FakeTelegram) -> AsyncIterator[str]:
    async with serve_app(make_app(fake)) as base:
        yield base


def _bot(url: str, token: str = TOKEN) -> Bot:
    return Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))


@pytest.fixture
async def bot(url: str) -> AsyncIterator[Bot]:
    bot = _bot(url)
    try:
        yield bot
    finally:
        await bot.session.close()


def _keyboard(*data: str) -> InlineKeyboardMarkup:
    buttons = [InlineKeyboardButton(text=d.title(), callback_data=d) for d in data]
    return InlineKeyboardMarkup(inline_keyboard=[buttons])


async def test_get_me_answers_the_bot_user(bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.first_name, me.username) == (
        123456,
        True,
        "Switchboard",
        "switchboard_bot",
    )


async def test_another_token_is_unauthorized(fake: FakeTelegram, url: str) -> None:
    stranger = _bot(url, "999:other-token")
    try:
        with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
            await stranger.get_me()
    finally:
        await stranger.session.close()
    assert fake.calls == [("getMe", {})]


async def test_a_queued_user_message_comes_back_from_get_updates(
    fake: FakeTelegram, bot: Bot
) -> None:
    fake.user_message(CHAT, CHAT, "hello there", username="alice")
    [update] = await bot.get_updates()
    assert update.update_id == 1000
    assert update.message is not None and update.message.text == "hello there"
    assert update.message.chat.id == CHAT and update.message.chat.type == "private"
    assert update.message.from_user is not None
    assert (update.message.from_user.id, update.message.from_user.username) == (CHAT, "alice")
    assert isinstance(update.message.date.timestamp(), float)


async def test_commands_and_mentions_get_telegram_entities(fake: FakeTelegram, bot: Bot) -> None:
    fake.user_message(CHAT, 7, "/start@switchboard_bot now")
    fake.user_message(-100, 7, "hey @switchboard_bot, 🙂 and @other_user", chat_type="supergroup")
    command, mention = await bot.get_updates()
    assert command.message is not None and mention.message is not None
    [entity] = command.message.entities or []
    assert (entity.type, entity.offset, entity.length) == ("bot_command", 0, 22)
    assert mention.message.chat.type == "supergroup"
    found = [(e.type, e.offset, e.length) for e in mention.message.entities or []]
    assert found == [("mention", 4, 16), ("mention", 29, 11)]  # the emoji is 2 UTF-16 units


async def test_a_higher_offset_confirms_and_drops_earlier_updates(
    fake: FakeTelegram, bot: Bot
) -> None:
    first = fake.user_message(CHAT, CHAT, "one")
    fake.user_message(CHAT, CHAT, "two")
    assert len(await bot.get_updates()) == 2  # nothing confirmed yet
    [update] = await bot.get_updates(offset=first["update_id"] + 1)
    assert update.message is not None and update.message.text == "two"
    [again] = await bot.get_updates()
    assert again.update_id == update.update_id
    assert await bot.get_updates(offset=update.update_id + 1) == []
    assert fake.pending == []


async def test_long_polling_wakes_on_a_new_update(fake: FakeTelegram, bot: Bot) -> None:
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.2)
    assert not poll.done()
    fake.user_message(CHAT, CHAT, "wake up")
    [update] = await asyncio.wait_for(poll, 5)
    assert update.message is not None and update.message.text == "wake up"
    assert time.monotonic() - started < 5


async def test_long_polling_with_nothing_pending_waits_out_the_timeout(bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == []
    assert 0.9 < time.monotonic() - started < 5


async def test_get_updates_while_a_webhook_is_set_is_a_conflict(
    fake: FakeTelegram, bot: Bot
) -> None:
    assert await bot.set_webhook("https://bot.example.org/telegram/webhook", secret_token="s3-cr_t")
    assert (fake.webhook_url, fake.webhook_secret) == (
        "https://bot.example.org/telegram/webhook",
        "s3-cr_t",
    )
    info = await bot.get_webhook_info()
    assert info.url == "https://bot.example.org/telegram/webhook"
    with pytest.raises(TelegramConflictError, match="webhook is active"):
        await bot.get_updates()
    assert await bot.delete_webhook()
    assert await bot.get_updates() == []


async def test_send_message_with_an_inline_keyboard_is_stored(fake: FakeTelegram, bot: Bot) -> None:
    asked = fake.user_message(CHAT, CHAT, "delete the logs")
    sent = await bot.send_message(
        CHAT,
        "<b>Approve</b> deleting &lt;logs&gt;?",
        parse_mode="HTML",
        reply_markup=_keyboard("approve:1", "deny:1"),
        reply_parameters=ReplyParameters(message_id=asked["message"]["message_id"]),
    )
    assert isinstance(sent, Message)
    assert sent.text == "Approve deleting <logs>?"
    assert [(e.type, e.offset, e.length) for e in sent.entities or []] == [("bold", 0, 7)]
    assert sent.reply_markup is not None
    assert sent.reply_markup.inline_keyboard[0][1].callback_data == "deny:1"
    assert sent.reply_to_message is not None and sent.reply_to_message.text == "delete the logs"
    [stored] = fake.messages(CHAT)
    assert stored.message_id == sent.message_id == 2  # the user's message was 1
    assert (stored.text, stored.parse_mode, stored.reply_to) == (
        "<b>Approve</b> deleting &lt;logs&gt;?",
        "HTML",
        1,
    )
    assert [b["callback_data"] for b in stored.buttons[0]] == ["approve:1", "deny:1"]
    method, params = fake.calls[-1]
    assert method == "sendMessage" and params["chat_id"] == CHAT


async def test_a_button_press_arrives_as_a_callback_query(fake: FakeTelegram, bot: Bot) -> None:
    fake.user_message(CHAT, CHAT, "hi", username="alice")
    sent = await bot.send_message(CHAT, "Approve?", reply_markup=_keyboard("approve:1"))
    fake.callback(CHAT, CHAT, sent.message_id, "approve:1")
    [_, update] = await bot.get_updates()
    query = update.callback_query
    assert query is not None and query.data == "approve:1"
    assert query.from_user.username == "alice"
    assert query.message is not None and query.message.message_id == sent.message_id
    assert await bot.answer_callback_query(query.id, text="Approved")
    assert fake.callback_answers == [{"callback_query_id": query.id, "text": "Approved"}]
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query.id)


async def test_edits_keep_history_and_refuse_no_change(fake: FakeTelegram, bot: Bot) -> None:
    fake.user_message(CHAT, CHAT, "hi")
    sent = await bot.send_message(CHAT, "Approve?", reply_markup=_keyboard("approve:1"))
    mid = sent.message_id
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(
            chat_id=CHAT, message_id=mid, reply_markup=_keyboard("approve:1")
        )
    rekeyed = await bot.edit_message_reply_markup(
        chat_id=CHAT, message_id=mid, reply_markup=_keyboard("approve:2")
    )
    assert isinstance(rekeyed, Message) and rekeyed.text == "Approve?"
    edited = await bot.edit_message_text("Approved", chat_id=CHAT, message_id=mid)
    assert isinstance(edited, Message) and edited.text == "Approved"
    assert edited.reply_markup is None  # no reply_markup drops the keyboard, as on Telegram
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("Approved", chat_id=CHAT, message_id=sent.message_id)
    [stored] = fake.messages(CHAT)
    assert stored.text == "Approved" and stored.reply_markup is None
    data = [
        [b["callback_data"] for b in (v.reply_markup or {})["inline_keyboard"][0]]
        for v in stored.edits
    ]
    assert [v.text for v in stored.edits] == ["Approve?", "Approve?"]
    assert data == [["approve:1"], ["approve:2"]]
    assert await bot.delete_message(CHAT, sent.message_id)
    assert fake.messages(CHAT)[0].deleted
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("again", chat_id=CHAT, message_id=sent.message_id)


async def test_fail_next_429_surfaces_as_retry_after(fake: FakeTelegram, bot: Bot) -> None:
    fake.user_message(CHAT, CHAT, "hi")
    fake.fail_next("sendMessage", retry_after=7)
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(CHAT, "first try")
    assert caught.value.retry_after == 7
    assert (await bot.send_message(CHAT, "second try")).text == "second try"
    assert [m.text for m in fake.messages(CHAT)] == ["second try"]
    assert [method for method, _ in fake.calls] == ["sendMessage", "sendMessage"]


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("<b>bold", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<div>x</div>", 'Unsupported start tag "div" at byte offset 0'),
        ("<b>a</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
    ],
)
async def test_bad_html_is_a_bad_request(
    fake: FakeTelegram, bot: Bot, text: str, detail: str
) -> None:
    fake.user_message(CHAT, CHAT, "hi")
    with pytest.raises(TelegramBadRequest, match="can't parse entities") as caught:
        await bot.send_message(CHAT, text, parse_mode="HTML")
    assert detail in caught.value.message
    assert fake.messages(CHAT) == []


async def test_markdown_v2_reserved_characters_must_be_escaped(
    fake: FakeTelegram, bot: Bot
) -> None:
    fake.user_message(CHAT, CHAT, "hi")
    with pytest.raises(TelegramBadRequest, match=r"Character '\.' is reserved"):
        await bot.send_message(CHAT, "*Done*.", parse_mode="MarkdownV2")
    sent = await bot.send_message(CHAT, "*Done*\\. `a.b`", parse_mode="MarkdownV2")
    assert sent.text == "Done. a.b"


async def test_text_limits(fake: FakeTelegram, bot: Bot) -> None:
    fake.user_message(CHAT, CHAT, "hi")
    assert (await bot.send_message(CHAT, "x" * 4096)).text == "x" * 4096
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(CHAT, "🙂" * 2049)  # 4098 UTF-16 units
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(CHAT, "<b> </b>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(777, "nobody asked")


async def test_too_long_callback_data_is_refused(fake: FakeTelegram, bot: Bot) -> None:
    fake.user_message(CHAT, CHAT, "hi")
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(CHAT, "Approve?", reply_markup=_keyboard("a" * 65))
    assert (await bot.send_message(CHAT, "ok", reply_markup=_keyboard("a" * 64))).text == "ok"


async def test_allowed_updates_filters_later_updates(fake: FakeTelegram, bot: Bot) -> None:
    fake.user_message(CHAT, CHAT, "hi")
    sent = await bot.send_message(CHAT, "Approve?", reply_markup=_keyboard("approve:1"))
    [hello] = await bot.get_updates(allowed_updates=["message"])
    fake.callback(CHAT, CHAT, sent.message_id, "approve:1")  # not asked for: never delivered
    fake.user_message(CHAT, CHAT, "still there?")
    [later] = await bot.get_updates(offset=hello.update_id + 1)
    assert later.message is not None and later.message.text == "still there?"


async def test_a_second_poller_terminates_the_first(fake: FakeTelegram, bot: Bot, url: str) -> None:
    other = _bot(url)
    try:
        first = asyncio.create_task(bot.get_updates(timeout=10))
        await asyncio.sleep(0.2)
        second = asyncio.create_task(other.get_updates(timeout=10))
        with pytest.raises(TelegramConflictError, match="terminated by other getUpdates"):
            await asyncio.wait_for(first, 5)
        fake.user_message(CHAT, CHAT, "for the survivor")
        [update] = await asyncio.wait_for(second, 5)
        assert update.message is not None and update.message.text == "for the survivor"
    finally:
        await other.session.close()


async def test_an_abandoned_long_poll_does_not_hold_up_shutdown(fake: FakeTelegram) -> None:
    async with serve_app(make_app(fake)) as base:
        bot = _bot(base)
        poll = asyncio.create_task(bot.get_updates(timeout=30))
        await asyncio.sleep(0.2)
        poll.cancel()
        await bot.session.close()
        started = time.monotonic()
    assert time.monotonic() - started < 0.9  # uvicorn would wait 1 s for a handler still busy
    assert poll.cancelled()


async def test_an_aiogram_dispatcher_polls_and_answers(fake: FakeTelegram, bot: Bot) -> None:
    dispatcher = Dispatcher()

    @dispatcher.message()
    async def echo(message: Message) -> None:
        await message.bot.send_chat_action(message.chat.id, "typing")  # type: ignore[union-attr]
        await message.reply(f"echo: {message.text}")

    polling = asyncio.create_task(
        dispatcher.start_polling(bot, handle_signals=False, close_bot_session=False)
    )
    try:
        fake.user_message(CHAT, CHAT, "ping")
        for _ in range(200):
            if fake.messages(CHAT):
                break
            await asyncio.sleep(0.02)
    finally:
        await dispatcher.stop_polling()
        await polling
    [answer] = fake.messages(CHAT)
    assert (answer.text, answer.reply_to) == ("echo: ping", 1)
    assert fake.chat_actions == [(CHAT, "typing")]
    names = [method for method, _ in fake.calls]
    assert names[0] == "getMe" and "getUpdates" in names
