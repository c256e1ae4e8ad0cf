"""The consortium's chain networks: local anvil, geth Clique, a Besu QBFT kit, validators that follow governance."""
