"""The CQKD protocol: BB84 roles, sessions, Alice and Bob, and their key store."""
