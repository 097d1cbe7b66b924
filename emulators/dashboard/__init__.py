"""The dashboard `benchtwin up` serves: every running emulator on one page (server.py, static/)."""
