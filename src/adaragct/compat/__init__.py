"""Old spellings that keep working: the AdaRAG-CT release's commands and flags, and names this project renamed.

* :mod:`adaragct.compat.renames`: our own renamed config keys (``stage`` -> ``phase``), accepted for a release
  with a warning, refused with the new name where they would otherwise be silently ignored.
"""
