"""The built-in layer kinds; importing this package registers them (see cnnlab.net.registry)."""

from cnnlab.net.kinds import conv, core, merge, pooling  # noqa: F401
