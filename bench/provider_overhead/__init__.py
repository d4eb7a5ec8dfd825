"""What the gateway adds to POST /api/chat/multi over calling the upstream directly."""
