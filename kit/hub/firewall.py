"""Each learner's listening sockets answer that learner alone (and root): an nftables table.

A guest's port forward listens on 127.0.0.1, and so do a guest's link to
another guest and the learner's own Jupyter server: on a shared machine
every local user can connect to 127.0.0.1.  File permissions cannot close a
TCP port, and a port range per learner would not cover the ports QEMU or
Jupyter pick themselves.  So the hub adds one nftables table that works on
sockets' owners, whatever the port:

* a new connection over loopback is marked with who opened it (a learner's
  uid, 0 for root, "someone else" for anyone else);
* a learner's socket may answer (its SYN-ACK, its replies) only connections
  marked with that learner's uid or root's.  Root must get through: the hub's
  proxy, run by root, talks to each learner's server.

The other learner's connection then times out: their SYN is never answered.
Measured here (Linux 6.18, nftables 1.0.6): the owner, the proxy (root)
connect; another learner and a non-class user time out.  It needs the
kernel's nf_tables (most distribution kernels) and Debian's ``nftables``
package for the ``nft`` program; without them the hub still runs, with a
warning that forwards are open to every local user.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterable

from kit.core.errors import SetupError

log = logging.getLogger(__name__)

SOMEONE_ELSE = 0xFFFFFFFF  # the mark of a connection opened by a user outside the class
TIMEOUT = 30.0


def table_name(port: int) -> str:
    """One table per hub, named after its port: two hubs on one host keep their own rules."""
    return f"kit_hub_{port}"


def ruleset(table: str, uids: Iterable[int]) -> str:
    """The table, in nft's language: replaces any table of that name in one transaction."""
    members = sorted(set(uids))
    marks = [f"        oif lo ct state new meta skuid {uid} ct mark set {uid}" for uid in members]
    guards = [f"        oif lo ct direction reply meta skuid {uid} ct mark != {{ 0, {uid} }} drop"
              for uid in members]
    return "\n".join([
        f"table inet {table} {{}}",  # so that the delete below never fails
        f"delete table inet {table}",
        f"table inet {table} {{",
        "    chain output {",
        "        type filter hook output priority filter; policy accept;",
        f"        oif lo ct state new ct mark set {SOMEONE_ELSE:#x}",
        "        oif lo ct state new meta skuid 0 ct mark set 0",
        *marks,
        *guards,
        "    }",
        "}",
        "",
    ])


def nft() -> str | None:
    return shutil.which("nft") or next(
        (path for path in ("/usr/sbin/nft", "/sbin/nft") if shutil.which(path)), None)


def missing_reason() -> str | None:
    """Why the firewall cannot be set here, or None if it can."""
    if nft() is None:
        return "the nft program is missing (apt-get install -y nftables)"
    done = _nft(["list", "tables"])
    if done.returncode != 0:
        return f"nft cannot list tables ({done.stderr.strip() or done.returncode}): the " \
               "kernel may lack nf_tables, or this is not root"
    return None


def apply(port: int, uids: Iterable[int]) -> None:
    """Set the hub's table for these users (the learners and the instructor)."""
    done = _nft(["-f", "-"], ruleset(table_name(port), uids))
    if done.returncode != 0:
        raise SetupError("the hub's firewall table could not be set.",
                         command=["nft", "-f", "-"], log=done.stderr, exit_code=done.returncode,
                         hint="Run the hub as root on a kernel with nf_tables, or set "
                         "firewall = false in the class file's [hub] (then every local user "
                         "can reach every learner's port forwards).")
    log.info("firewall table %s set for %d users", table_name(port), len(set(uids)))


def remove(port: int) -> None:
    """Remove the hub's table (nothing happens if there is none)."""
    if nft() is None:
        return
    table = table_name(port)
    _nft(["-f", "-"], f"table inet {table} {{}}\ndelete table inet {table}\n")


def active(port: int) -> bool:
    return nft() is not None and _nft(["list", "table", "inet", table_name(port)]).returncode == 0


def _nft(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    program = nft()
    if program is None:
        raise SetupError("the nft program is missing.", hint="apt-get install -y nftables")
    return subprocess.run([program, *args], input=stdin, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
