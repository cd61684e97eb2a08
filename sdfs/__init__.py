"""sdfs: a FUSE filesystem that stores photos as compressed Stable Diffusion latents."""

__version__ = "0.1.0"
