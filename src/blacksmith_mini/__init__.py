"""Blacksmith Mini: one fresh microVM per GitHub Actions job."""
