"""A fake GitHub that speaks GitHub's REST formats, with simulated runners and a workload."""
