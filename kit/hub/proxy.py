"""JupyterHub's proxy, configurable-http-proxy: a Node.js program, installed with npm.

The proxy is the one part of a hub that is not Python.  It runs on Debian's
Node.js (``apt-get install nodejs npm``) and is installed once, with npm,
into a folder of the kit's (:func:`kit.hub.places.proxy_dir`), not into the
system's global npm folder: removing the kit's environment removes it too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from kit.core.errors import SetupError
from kit.hub import places

PACKAGE = "configurable-http-proxy@5"  # 5.x: Node.js 18 or later
MIN_NODE = 18
INSTALL_TIMEOUT = 600.0


def node() -> Path:
    """Debian's ``node``, checked to be recent enough; :class:`SetupError` says how to get it."""
    found = shutil.which("node") or shutil.which("nodejs")
    if found is None:
        raise SetupError(
            "Node.js is missing: JupyterHub's proxy (configurable-http-proxy) runs on it.",
            hint="Install it as root: apt-get install -y nodejs npm (Debian 12 has Node.js 18), "
            "then start the hub again.")
    major = node_major(Path(found))
    if major < MIN_NODE:
        raise SetupError(
            f"{found} is Node.js {major}; the proxy needs {MIN_NODE} or later.",
            hint="Install a newer Node.js (Debian 12's nodejs package is 18), or put one first "
            "on PATH.")
    return Path(found)


def node_major(program: Path) -> int:
    try:
        said = subprocess.run([str(program), "--version"], capture_output=True, text=True,
                              timeout=30, check=False).stdout
    except OSError as error:
        raise SetupError(f"{program} does not run: {error}.",
                         hint="Reinstall Node.js: apt-get install --reinstall nodejs") from None
    match = re.match(r"v?(\d+)\.", said.strip())
    if match is None:
        raise SetupError(f"{program} --version said {said.strip()!r}, not a Node.js version.",
                         hint="Check that node on PATH is Node.js (apt-get install nodejs).")
    return int(match.group(1))


def installed(folder: Path | None = None) -> Path | None:
    """The proxy's program in the kit's folder, if npm installed it there."""
    program = (folder or places.proxy_dir()) / "node_modules" / ".bin" / "configurable-http-proxy"
    return program if program.exists() else None


def ensure(folder: Path | None = None) -> Path:
    """The proxy's program, installed with npm first if it is not there yet (once, about 10 s)."""
    target = folder or places.proxy_dir()
    node()
    program = installed(target)
    if program is not None:
        return program
    npm = shutil.which("npm")
    if npm is None:
        raise SetupError("npm is missing: it installs JupyterHub's proxy.",
                         hint="Install it as root: apt-get install -y npm")
    target.mkdir(parents=True, exist_ok=True)
    command = [npm, "install", "--prefix", str(target), "--no-audit", "--no-fund",
               "--omit=dev", PACKAGE]
    done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
                          check=False)
    program = installed(target)
    if done.returncode != 0 or program is None:
        raise SetupError("npm could not install JupyterHub's proxy.", command=command,
                         log=done.stdout + done.stderr, exit_code=done.returncode,
                         hint="Check this machine can reach the npm registry (or set npm's "
                         "registry to a mirror), then start the hub again.")
    return program
