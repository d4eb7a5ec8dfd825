"""The Discord channel (discord.py): ``DiscordChannel``."""

import warnings

with warnings.catch_warnings():
    # discord.py's voice support imports the stdlib ``audioop``, deprecated since 3.11
    # (discord.py brings ``audioop-lts`` where it is gone); voice is not used here.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord  # noqa: F401

from channels.discord.adapter import DiscordChannel  # noqa: E402

__all__ = ["DiscordChannel"]
