"""Pure certificate logic on cryptography objects: parse, verify, name, issue."""
