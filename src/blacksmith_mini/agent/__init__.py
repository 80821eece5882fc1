"""The host agent: runs this host's VMs for a remote control plane (``blacksmith-mini agent``)."""
