"""Helpers shared by the tests that serve the app or drive Debian's chromium."""

from __future__ import annotations

import socket

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def set_dropdown(page, elem_id: str, value: str) -> None:
    """Type a value into a Gradio dropdown that accepts custom values, and confirm it."""
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(value)
    box.press("Enter")
    page.locator("body").click(position={"x": 5, "y": 5})
