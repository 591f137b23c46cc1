"""Settings, the desired state and the secrets it names."""

import os

# pydantic looks for third-party plugins in every installed package's metadata on first use (tens of
# milliseconds per command), and a plugin would see every value validated, store passwords included.
# This program uses none.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
