"""Pure cryptography and statistics for the consortium: no web, no chain, no database."""
