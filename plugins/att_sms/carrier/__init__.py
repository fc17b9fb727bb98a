"""The carrier's HTTP API: the client, its transport, the OAuth token, reading answers, errors."""
