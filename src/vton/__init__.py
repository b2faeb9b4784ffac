"""vton: a virtual try-on service built on IDM-VTON."""

__version__ = "0.1.0"
