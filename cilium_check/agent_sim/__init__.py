"""A local stand-in for `agent check`: run a check class and print what the Agent would.

`run_instances()` loads and runs each instance against the `datadog_checks.base` stubs,
`AgentAggregator` turns the raw submissions into the series the Agent flushes, and
`print_text()` / `print_json()` print them in the `agent check` layouts.
"""

from .aggregator import AgentAggregator, Flush, SenderStats
from .printer import json_payload, print_json, print_text, series_table
from .runner import InstanceResult, RunnerStats, RunRecord, build_check_id, exit_code, run_instance, run_instances

__all__ = [
    "AgentAggregator",
    "Flush",
    "InstanceResult",
    "RunRecord",
    "RunnerStats",
    "SenderStats",
    "build_check_id",
    "exit_code",
    "json_payload",
    "print_json",
    "print_text",
    "run_instance",
    "run_instances",
    "series_table",
]
