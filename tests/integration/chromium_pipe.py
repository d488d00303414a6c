"""Drive headless Chromium over its DevTools pipe: open pages, run script, take screenshots.

Standard library only: Chromium started with ``--remote-debugging-pipe`` reads DevTools
commands on its file descriptor 3 and answers on 4, as JSON messages ended by a NUL byte, so
no WebSocket client is needed. One browser serves a whole test: opening a page at a given
width costs milliseconds, where a new Chromium costs a second or two.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip


class Chromium:
    """One headless Chromium, one page (tab) in it."""

    def __init__(self, executable: str, profile: Path) -> None:
        commands_read, self._commands = os.pipe()
        self._answers, answers_write = os.pipe()
        # bash puts the two pipes on the descriptors Chromium expects, then becomes it (dash,
        # Debian's sh, cannot redirect descriptors above 9)
        script = f'exec "$0" "$@" 3<&{commands_read} 4>&{answers_write}'
        self.log = profile.with_name(profile.name + "-chromium.log")
        bash = shutil.which("bash") or "/bin/bash"
        with self.log.open("wb") as log:  # a file, not a pipe nobody reads that could fill up
            self.proc = subprocess.Popen(
                [bash, "-c", script, executable, *CHROMIUM_FLAGS, "--remote-debugging-pipe",
                 f"--user-data-dir={profile}", "--lang=en-US", "--hide-scrollbars", "about:blank"],
                pass_fds=(commands_read, answers_write),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        os.close(commands_read)
        os.close(answers_write)
        self._buffer = b""
        self._next_id = 0
        self.session = ""
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            attached = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
            self.session = attached["sessionId"]
            self.page("Page.enable")
            self.page("Runtime.enable")
        except BaseException:
            self.close()
            raise

    def call(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """Send one DevTools command and wait for its answer (events on the way are skipped)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 60
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self._next_id:
                    if "error" in answer:
                        raise RuntimeError(f"{method}: {answer['error']}")
                    return dict(answer.get("result", {}))
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._answers], [], [], left)[0]:
                raise TimeoutError(f"Chromium did not answer {method} in 60 s")
            chunk = os.read(self._answers, 1 << 20)
            if not chunk:
                stderr = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"Chromium closed its pipe: {stderr}")
            self._buffer += chunk

    def page(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A command to the page."""
        return self.call(method, params, self.session)

    def open(self, url: str, width: int, height: int = 900, *, phone: bool = False) -> None:
        """Load ``url`` in a window ``width`` CSS pixels wide (a phone's, with ``phone``)."""
        self.page(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": phone},
        )
        self.page("Page.navigate", {"url": url})

    def eval(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        answer = self.page(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait(self, expression: str, timeout_s: float = 15.0) -> Any:
        """Wait until a JavaScript expression is truthy; return its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                value = self.eval(expression)
            except RuntimeError:
                value = None  # the page is still loading
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"still false after {timeout_s} s: {expression}")
            time.sleep(0.05)

    def screenshot(self, path: Path) -> Path:
        """Save the whole page (not only the window) as a PNG; refuse a blank one."""
        size = self.eval(
            "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
        )
        shot = self.page(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True,
             "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}},
        )  # fmt: skip
        path.write_bytes(base64.b64decode(shot["data"]))
        from PIL import Image

        image = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
        assert image.std() > 10, f"{path} looks blank"
        keep = os.environ.get("IBKRFW_SCREENSHOTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(keep) / path.name)
        return path

    def close(self) -> None:
        """Quit Chromium."""
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:  # our own child, by its pid
            self.proc.kill()
            self.proc.wait(10)
        os.close(self._commands)
        os.close(self._answers)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
