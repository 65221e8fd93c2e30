"""Errors of key custody. Their messages never carry key material."""


class KeyCustodyError(Exception):
    """A stored secret could not be sealed or opened."""


class KeyCustodyUnavailable(KeyCustodyError):
    """The KEK provider is unreachable or unconfigured and no cached key exists: fail closed."""


class KeyCustodyTampered(KeyCustodyError):
    """Authentication failed: the row was altered, copied to another row, or has the wrong AAD."""
