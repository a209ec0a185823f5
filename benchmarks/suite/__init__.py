"""The benchmark runner's parts: profiles, work units, results, report."""
