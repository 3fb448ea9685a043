"""The city one-card (一卡通): accounts, a double-entry ledger in fen, top-ups, charges, device certificates and
settlement of offline rides."""
