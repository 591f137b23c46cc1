"""Store encoders and readers: bytes in, bytes out, no file I/O."""
