"""Layer 2, the hypervisor: QEMU processes and the channels the kit speaks to them.

The command line (:mod:`.qemu`), the accelerator probe, a guest's lifecycle
(:mod:`.guest`), its three channels (QMP, console, guest agent), the registry
of live guests, the doors through which data crosses (:mod:`.doors`), and a
running machine saved whole or moved to a new QEMU (:mod:`.snapshot`,
:mod:`.migration`)."""
