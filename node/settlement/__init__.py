"""Settlement: data offers and certificates, metered usage, revenue-share statements and their payment."""
