"""Integrations with frameworks; each subpackage needs its framework installed (an extra of taskq-sql)."""
