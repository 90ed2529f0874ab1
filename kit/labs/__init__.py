"""Experiments built from guests: a small cloud, isolation, a boot stopwatch, boot against
restore, containers."""
