"""SustainML: choose greener ML models, hardware and regions before spending the energy.

The runtime every node and client shares: message types (``msg``), topics and QoS (``topics``,
``qos``), the node base (``node``), request/reply (``bus``), configuration and the client API.
"""

from .client import Client, TaskHandle

__all__ = ["Client", "TaskHandle", "__version__"]
__version__ = "0.1.0"
