"""The remote driver: VMs on other hosts, run by their agents (see ``wire`` and ``driver``)."""
