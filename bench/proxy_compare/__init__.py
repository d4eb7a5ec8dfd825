"""Switchboard's /v1/chat/completions against LiteLLM's proxy and Portkey's gateway."""
