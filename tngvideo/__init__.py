"""tngvideo: a learned image and video codec."""

__version__ = "0.1.0"
