"""Posting to the chat with the chat's confirmation, and SMS conversations as chat threads."""
