"""agentops — production patterns for AG2 v1 agents, one module per pattern family.

Import the module a chapter needs (``from agentops.models import model_config``); ``import agentops``
itself stays cheap and imports nothing from AG2.
"""

from __future__ import annotations

__version__ = "0.1.0"
DISTRIBUTION = "ag2-agentops-cookbook"
__cookbook__ = True  # marker checked by agentops._identity; the AgentOps SDK does not set it
