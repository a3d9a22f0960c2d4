"""The running stage: plan points, measure them in worker processes, store rows (results.csv, env.json)."""
