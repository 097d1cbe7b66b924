"""benchtwin: emulators of streaming devices and services, their shared kit, the CLI and the pytest plugin."""

__version__ = "0.1.0"
