"""StoreGuard command line and composition root: wires the layers into processes."""

__version__ = "0.1.0"
