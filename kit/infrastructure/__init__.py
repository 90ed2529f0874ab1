"""Layer 1, infrastructure: the real machine under every guest.

Host facts (CPUs, memory, virtualization flags), the per-user limits that keep
a class within the machine, the host's clock, and host-side networking helpers."""
