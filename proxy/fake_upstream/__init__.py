"""Fake Anthropic upstream for tests, the run command and benchmarks (docs/fake-upstream.md)."""

from proxy.fake_upstream.app import FakeUpstream, create_app, input_tokens_for, output_tokens_for
from proxy.fake_upstream.server import RunningFake, running_fake_upstream

__all__ = [
    "FakeUpstream",
    "RunningFake",
    "create_app",
    "input_tokens_for",
    "output_tokens_for",
    "running_fake_upstream",
]
