"""The Slack channel (slack-bolt, asyncio): ``SlackChannel``."""

from channels.slack.adapter import SlackChannel

__all__ = ["SlackChannel"]
