"""The report viewer: one self-contained HTML page per predictions file (``adaragct-show``, :mod:`adaragct.apps.show`).

:mod:`~adaragct.viewer.positions` places each ``[RAG]`` in the text, :mod:`~adaragct.viewer.data` builds the
page's data (reports, labels, traces), :mod:`~adaragct.viewer.render` writes the page from
``templates/view.html.j2``.
"""

from adaragct.viewer.data import build_view
from adaragct.viewer.render import render_view, write_view

__all__ = ["build_view", "render_view", "write_view"]
