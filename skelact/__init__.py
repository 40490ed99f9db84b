"""skelact: skeleton-based human action recognition."""

__version__ = "0.1.0"
