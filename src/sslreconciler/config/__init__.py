"""Settings, the desired state and the secrets it names."""
