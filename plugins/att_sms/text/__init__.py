"""Text rules: phone numbers, SMS parts and their encoding, chat formatting, command arguments."""
