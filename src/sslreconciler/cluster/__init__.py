"""The cluster PKI commands: staging CA and hosts, rotation, bundles, the web certificate, ACME."""
