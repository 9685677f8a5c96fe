"""The operator's runbook procedures as library functions (commands render what these return)."""
