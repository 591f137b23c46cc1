"""One reconcile: observe the ssl dir, decide (pure), execute; the Reconciler every command goes through."""
