"""Inbound SMS: the inbox fetch in a helper process and the chat posts made of stored messages."""
