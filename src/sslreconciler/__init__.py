"""sslreconciler: keeps a PBX node's TLS stores derived from its PEM sources."""

__version__ = "0.1.0"
