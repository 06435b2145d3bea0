"""The OpenMetrics V2 scraper as the check uses it for one Cilium component."""

from __future__ import annotations

from datadog_checks.base.checks.openmetrics.v2.scraper import OpenMetricsScraper
from datadog_checks.base.constants import ServiceCheck


class CiliumScraper(OpenMetricsScraper):
    """A V2 scraper whose health messages name the endpoint, so one alert says which URL failed."""

    def submit_health_check(self, status, **kwargs):
        message = kwargs.get("message")
        if status != ServiceCheck.OK and message and self.endpoint not in message:
            kwargs["message"] = f"{self.endpoint}: {message}"
        super().submit_health_check(status, **kwargs)
