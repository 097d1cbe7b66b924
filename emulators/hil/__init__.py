"""Hardware in the loop: record a device through a proxy, replay the recording, and diff it against an emulator."""
