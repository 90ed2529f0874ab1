"""One server for a class: a JupyterHub whose learners each run the lessons as themselves.

``python -m kit hub serve CLASSFILE`` (what ``./setup.sh hub`` runs) reads one
class file (:mod:`kit.hub.classfile`), makes each learner and the instructor a
system user of their own (:mod:`kit.hub.accounts`), and starts JupyterHub
(:mod:`kit.hub.server`) with its proxy, configurable-http-proxy, on Debian's
Node.js (:mod:`kit.hub.proxy`).  Each learner's single-user server opens in
their own copies of the lessons, under their limits: a systemd unit's where
the host runs systemd, else a control group the kit makes, and always the
kit's own caps (:mod:`kit.hub.spawning`, :mod:`kit.hub.config`).  A firewall
table keeps each learner's listening sockets (port forwards, links, their
Jupyter server) to themselves (:mod:`kit.hub.firewall`), and their progress
reaches the instructor through a drop folder (:mod:`kit.hub.progress`), which
the control room's class view reads (:mod:`kit.hub.report`, :mod:`kit.hub.room`):
every learner's checkpoints, quiz answers, live guests, and who is stuck.

Where its files are is :mod:`kit.hub.places`.  This package sits above every
other layer: it serves the lessons, and nothing in the kit imports it.
"""
