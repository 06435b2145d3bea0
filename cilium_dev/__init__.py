"""Developer tooling of datadog-cilium: the fixture server and its payloads, the demo, the dashboard
preview and the generators of derived files.

None of it runs in the Agent, so the wheel leaves this package out; it is used from a checkout
(`make demo`, `make test`, `make generate`, `make validate`) and by the tests.
"""
