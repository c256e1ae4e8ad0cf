"""The chain gateway: compile, deploy, send signed transactions, decode reverts, read events."""
