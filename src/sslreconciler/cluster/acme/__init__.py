"""ACME (RFC 8555) issuance and renewal of the web certificate: observe, decide, execute."""
