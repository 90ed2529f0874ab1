"""Builders of guest images: apt downloads, the kit's kernel, foreign architectures,
the root disk and the cpio archive.  Builders share :mod:`.common` and :mod:`.apt`,
never the image module above them."""
