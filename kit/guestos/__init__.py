"""Layer 3, the guest OS: the image a guest boots, and how it is built.

:mod:`kit.guestos.images` finds and describes images; :mod:`kit.guestos.build`
makes them (a kernel, busybox, the guest agent, a root disk)."""
