"""Recall.ai meeting-bot emulator: bots REST API, simulated meetings and real-time media senders."""
