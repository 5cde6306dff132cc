"""newsqa front ends: the command line and the Telegram bot."""
