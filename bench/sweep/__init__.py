"""Many runs: experiment files, the resumable plan, executors (local, Ray) and the one-run worker process."""
