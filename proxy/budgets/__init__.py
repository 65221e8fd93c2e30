"""Budgets that hold: atomic reservations in Redis, settlement, rebuilds from PostgreSQL, alerts.

See docs/budgets.md.
"""
