"""The fast scrape path: see `scraper`."""
