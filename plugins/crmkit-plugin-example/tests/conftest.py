"""Opt in to crmkit's fixtures for plugin authors."""

pytest_plugins = ["crmkit.testing"]
