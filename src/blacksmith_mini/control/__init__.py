"""The reconcile loop: observe, plan, act, record; and the immutable view it publishes."""
