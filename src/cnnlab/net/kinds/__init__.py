"""The built-in layer kinds; importing this package registers them (see cnnlab.net.registry)."""

from cnnlab.net.kinds import conv, core, merge, pooling  # noqa: F401

# isort: split
# Registered last, so that tables (`cnnlab models`, the README) list the augmentation kinds after the others.
from cnnlab.net.kinds import augment  # noqa: F401
