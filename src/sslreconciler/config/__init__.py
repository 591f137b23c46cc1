"""Settings, the desired state and the secrets it names. Importing it changes nothing in the process
(the CLI's entry point sets the environment defaults the program wants: sslreconciler.cli.main)."""
