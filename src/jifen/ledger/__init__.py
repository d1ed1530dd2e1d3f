"""The points ledger: accounts, double-entry journal, lots, holds, cached balances."""
