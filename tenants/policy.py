"""Kept for old imports: the policy now lives in the privacy app (versions in the database)."""

from privacy.policy import Policy, Section, parse_policy
from privacy.selectors import policy_in_force


def current_policy() -> Policy:
    """The policy in force."""
    return parse_policy(policy_in_force().text)


__all__ = ["Policy", "Section", "current_policy", "parse_policy"]
