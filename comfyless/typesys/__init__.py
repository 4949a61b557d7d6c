"""The contract layer: socket types, node schemas, value checks and errors.

Imports nothing else of comfyless, and nothing heavy (no torch).
"""

from .errors import *  # noqa: F401,F403
from .schema import NO_DEFAULT, Input, Node, NodeRegistry, NodeSchema, Output, Result  # noqa: F401
from .types import *  # noqa: F401,F403
