"""Open a listening report in headless Chromium and check that every player and image loads.

No extra Python dependency: Chromium's ``--dump-dom`` prints the page after its scripts ran
(``--virtual-time-budget`` lets media metadata arrive first), and the report's own inline check
has by then written ``data-media-state`` on every ``<audio>`` and ``<img>``. Console messages
and uncaught exceptions come from Chromium's log (``--enable-logging=stderr --v=0``), which
gives every console level as INFO: ``console.log`` counts as much as ``console.error`` (the
report writes nothing to the console).
Chromium comes from ``tools/install_chromium.sh``.
"""

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List, Optional, Union

from typeguard import typechecked

_CONSOLE_LINE = re.compile(r":CONSOLE[:(]\d*\)?\]\s*(.*)$")


@dataclass(frozen=True)
class MediaElement:
    """One ``<audio>`` or ``<img>`` after the page loaded.

    Attributes:
        tag: ``audio`` or ``img``.
        src: The ``src`` attribute.
        state: ``ok``, ``error`` or ``pending`` (the report's check had no answer in time).
        duration_s: Audio duration as the browser decoded it (None for images).
    """

    tag: str
    src: str
    state: str
    duration_s: Optional[float]


@dataclass(frozen=True)
class BrowserCheck:
    """What the browser saw.

    Attributes:
        media: Every ``<audio>`` and ``<img>`` in page order.
        console_messages: Console output of the page (empty for a healthy report).
        status_text: The report's own status line.
        dom: The page's DOM after its scripts ran.
    """

    media: List[MediaElement]
    console_messages: List[str]
    status_text: str
    dom: str

    @property
    def problems(self) -> List[str]:
        """Human-readable list of everything wrong; empty if the page is fine."""
        problems = [
            f"{m.tag} {m.src}: {m.state}" for m in self.media if m.state != "ok"
        ] + [
            f"audio {m.src}: duration {m.duration_s}"
            for m in self.media
            if m.tag == "audio" and m.state == "ok" and not (m.duration_s or 0) > 0
        ]
        return problems + [f"console: {message}" for message in self.console_messages]


class _MediaCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.media: List[MediaElement] = []
        self.status_text = ""
        self._in_status = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes: Dict[str, str] = {k: v or "" for k, v in attrs}
        if tag in ("audio", "img"):
            duration = attributes.get("data-duration")
            self.media.append(
                MediaElement(
                    tag=tag,
                    src=attributes.get("src", ""),
                    state=attributes.get("data-media-state", "pending"),
                    duration_s=float(duration) if tag == "audio" and duration else None,
                )
            )
        self._in_status = attributes.get("id") == "media-status"

    def handle_data(self, data: str) -> None:
        if self._in_status:
            self.status_text += data

    def handle_endtag(self, tag: str) -> None:
        self._in_status = False


def find_chromium() -> str:
    """Path of a Chromium binary ($CHROMIUM_BINARY, chromium, chromium-browser, google-chrome).

    Raises:
        FileNotFoundError: With the command that installs it.
    """
    for candidate in (os.environ.get("CHROMIUM_BINARY"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    raise FileNotFoundError(
        "no Chromium found: run tools/install_chromium.sh (as root it installs Debian's "
        "chromium package) or set CHROMIUM_BINARY=/path/to/chromium"
    )


def _chromium_command(profile_dir: str, extra: List[str]) -> List[str]:
    command = [
        find_chromium(),
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--mute-audio",
        f"--user-data-dir={profile_dir}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--no-sandbox")  # Chromium refuses to start as root with its sandbox
    return command + extra


@typechecked
def check_report_in_browser(
    html_path: Union[str, Path],
    screenshot_path: Optional[Union[str, Path]] = None,
    window_size: str = "1280,2200",
    timeout_s: float = 120.0,
) -> BrowserCheck:
    """Load the page in headless Chromium, collect media states and console output, and
    optionally save a screenshot of the top ``window_size`` pixels.

    Raises:
        FileNotFoundError: If Chromium is missing (see :func:`find_chromium`).
        RuntimeError: If Chromium fails, with its stderr.
    """
    url = Path(html_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="report-browser-") as profile_dir:
        dump = subprocess.run(
            _chromium_command(profile_dir, ["--virtual-time-budget=10000", "--dump-dom", url]),
            capture_output=True, text=True, timeout=timeout_s, check=False,
        )
        if dump.returncode != 0 or "<html" not in dump.stdout:
            raise RuntimeError(
                f"chromium --dump-dom {url} failed (exit {dump.returncode}):\n{dump.stderr[-4000:]}"
            )
        if screenshot_path is not None:
            shot = subprocess.run(
                _chromium_command(
                    profile_dir,
                    ["--hide-scrollbars", f"--window-size={window_size}",
                     "--virtual-time-budget=10000",
                     f"--screenshot={Path(screenshot_path).resolve()}", url],
                ),
                capture_output=True, text=True, timeout=timeout_s, check=False,
            )
            if shot.returncode != 0 or not Path(screenshot_path).is_file():
                raise RuntimeError(
                    f"chromium --screenshot {url} failed (exit {shot.returncode}):\n"
                    f"{shot.stderr[-4000:]}"
                )
    collector = _MediaCollector()
    collector.feed(dump.stdout)
    console = [
        match.group(1) for line in dump.stderr.splitlines() if (match := _CONSOLE_LINE.search(line))
    ]
    return BrowserCheck(
        media=collector.media,
        console_messages=console,
        status_text=collector.status_text.strip(),
        dom=dump.stdout,
    )
