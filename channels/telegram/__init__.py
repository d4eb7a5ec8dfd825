"""The Telegram channel (aiogram 3): ``TelegramChannel``."""

from channels.telegram.adapter import TelegramChannel

__all__ = ["TelegramChannel"]
