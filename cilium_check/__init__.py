"""The implementation of the Cilium check for the Datadog Agent.

The Agent imports the check class from `datadog_checks.cilium`; everything it is built from lives
here: the mapping table (`mapping`, `metrics.csv`), the components (`components`), the
configuration rules (`config`), finding endpoints (`endpoints`, `probe`, `detect`), the scrapers
(`scraper`, `fast`), reading bodies within bounds (`body`), budgets (`cardinality`) and the
`cilium-check` command (`cli`, `agent_sim`).
"""
