"""VM drivers: the only code that starts, watches and stops runner VMs."""
