class BitstreamError(ValueError):
    """The data is not a valid tngvideo stream (foreign, truncated, corrupt or unsupported)."""
