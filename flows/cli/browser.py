"""Open a page in the desktop's browser — only when there is a desktop (a display, or macOS/Windows)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def has_desktop(environ=None, platform: str | None = None) -> bool:
    """True on macOS and Windows, and on other systems when DISPLAY or WAYLAND_DISPLAY is set."""
    environ = os.environ if environ is None else environ
    platform = platform or sys.platform
    if platform == "darwin" or platform.startswith("win"):
        return True
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def open_page(path: str | os.PathLike, environ=None, platform: str | None = None) -> bool:
    """Open `path` in a browser; a no-op returning False without a desktop or a usable browser."""
    if not has_desktop(environ, platform):
        return False
    import webbrowser

    try:
        return bool(webbrowser.open(Path(path).resolve().as_uri()))
    except webbrowser.Error:
        return False
