"""A JupyterLab server of the tests' own: free local port, random token, nothing shared.

Everything it reads or writes lives in one scratch folder: a copy of
``lessons/`` (the real notebooks are never opened, so never modified), its
config, user settings, workspaces and runtime files.  The user settings turn
off what a test cannot use and would have to click away: the news and update
pop-up.  They also attach every cell to the page at once (notebook
``windowingMode: none``; JupyterLab's default only lays out the cells in
view, and the text of a skipped cell is not readable), which changes how fast
a long notebook scrolls, not what it shows.

It saves as ``./setup.sh lab`` does (``setup.sh``'s ``jupyter_lab_args``):
through :func:`kit.lesson.workspace.drop_widget_views`, so a saved lesson
keeps no output of a live widget.  And it exposes its application object to
the page (``window.jupyterapp``), so that a test can run JupyterLab's own
commands (switch the theme, open a file) and read the notebook's model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.browser import processes

ROOT = Path(__file__).resolve().parents[2]
LESSONS = ROOT / "lessons"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
SAVE_HOOK = "kit.lesson.workspace.drop_widget_views"  # as setup.sh's jupyter_lab_args

USER_SETTINGS: dict[str, dict[str, Any]] = {
    # "Would you like to receive official Jupyter news?" and the update check.
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                    "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}
SERVER_CONFIG: dict[str, dict[str, Any]] = {
    "LabApp": {
        "news_url": None,  # the server fetches no news feed either
        "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
        "extension_manager": "readonly",  # no PyPI look-ups from the extension panel
    },
}


def lessons_fingerprint() -> tuple[str, dict[str, str]]:
    """What ``git status`` says of the repository's lessons/, and a hash of each file in it."""
    status = subprocess.run(["git", "status", "--porcelain", "--", str(LESSONS)], cwd=ROOT,
                            capture_output=True, text=True, check=False).stdout
    hashes = {str(path.relative_to(LESSONS)): hashlib.sha256(path.read_bytes()).hexdigest()
              for path in sorted(LESSONS.rglob("*")) if path.is_file()}
    return status, hashes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class JupyterLab:
    """One ``jupyter lab`` process serving a copy of the lessons.

    ``start()`` returns once the server answers; ``stop()`` shuts it down
    through its API (which shuts its kernels down), then kills whatever of
    its process family is left, and returns what had to be killed.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.lessons = workdir / "lessons"
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.log_path = workdir / "jupyterlab.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.started: set[int] = set()
        self.shipped_lessons = lessons_fingerprint()  # the repository's, as they were

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base_url}/{path.lstrip('/')}{sep}token={self.token}"

    # -- starting ----------------------------------------------------------------

    def start(self) -> JupyterLab:
        shutil.copytree(LESSONS, self.lessons,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        env = self._environment()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self._command(), cwd=self.lessons, env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()
        return self

    def _command(self) -> list[str]:
        command = [
            sys.executable, "-m", "jupyter", "lab", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.lessons}",
            f"--ContentsManager.pre_save_hook={SAVE_HOOK}",
            "--LabApp.expose_app_in_browser=True",
        ]
        if os.geteuid() == 0:
            command.append("--allow-root")
        return command

    @property
    def progress_file(self) -> Path:
        """The progress file (and, beside it, the class settings) of this server's kernels."""
        return self.workdir / "progress.json"

    def _environment(self) -> dict[str, str]:
        folders = {name: self.workdir / name for name in
                   ("config", "settings", "workspaces", "runtime", "ipython")}
        for folder in folders.values():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        (folders["config"] / "jupyter_server_config.json").write_text(json.dumps(SERVER_CONFIG))
        for plugin, values in USER_SETTINGS.items():
            path = folders["settings"] / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        return {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(folders["config"]),
            "JUPYTERLAB_SETTINGS_DIR": str(folders["settings"]),
            "JUPYTERLAB_WORKSPACES_DIR": str(folders["workspaces"]),
            "JUPYTER_RUNTIME_DIR": str(folders["runtime"]),
            "IPYTHONDIR": str(folders["ipython"]),
            # The lessons record the learner's progress: not in the real learner's file.
            "KIT_PROGRESS_FILE": str(self.progress_file),
        }

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                self.api("GET", "api/status")
                self.started = processes.family(self.process.pid)
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise RuntimeError(f"JupyterLab did not answer in {START_TIMEOUT_S:.0f} s:\n"
                           f"{self.log_tail()}")

    # -- talking to it -----------------------------------------------------------

    def api(self, method: str, path: str) -> Any:
        request = urllib.request.Request(self.url(path), method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            body = reply.read()
        return json.loads(body) if body else None

    def kernel_pids(self) -> set[int]:
        """The server's child processes now: its kernels."""
        if self.process is None:
            return set()
        return processes.family(self.process.pid) - {self.process.pid}

    def shut_down_sessions(self) -> None:
        """End every notebook session (and so its kernel), as closing a lesson would."""
        for session in self.api("GET", "api/sessions"):
            self.api("DELETE", f"api/sessions/{session['id']}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- stopping ----------------------------------------------------------------

    def stop(self) -> set[int]:
        """Shut down politely, then kill leftovers; return the pids that had to be killed."""
        if self.process is None:
            return set()
        ours = self.started | processes.family(self.process.pid)
        if self.process.poll() is None:
            with contextlib.suppress(urllib.error.URLError, ConnectionError):
                self.api("POST", "api/shutdown")  # no answer: already on its way out
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        left = processes.wait_gone(ours, 5)
        processes.kill(left)
        self.process = None
        return left
