"""An emulator of Adobe IMS and the Adobe Experience Platform Flow Service API, for tests and benchmarks.

It imports nothing from the gateway (``app``). See ``flow-service.md`` Part 1.1 for what it implements.
"""

from .app import create_app
from .config import EmulatorConfig
from .server import EmulatorServer

__all__ = ["EmulatorConfig", "EmulatorServer", "create_app"]
