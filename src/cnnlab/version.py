"""cnnlab's version, in a module of its own that imports nothing.

Run folders, markers and generated files record it; reading it from here rather than from
``cnnlab/__init__.py`` keeps those low floors from importing the whole package above them.
"""

__version__ = "0.1.0"
