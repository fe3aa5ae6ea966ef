"""The studio's service layer: the job store, the runners, and the seam to the models.

- `kinds`: one record per job kind (params, executor, GPU need, folder, result).
- `execute.run_job`: one job in one folder, no database (what every runner calls).
- `runner`: the `Runner` interface; `LocalRunner` (one worker process) is the default.
- `store`: the database, its migrations, the queue operations; `models`: its tables.
- `worker`: the local worker process.
- `ray`: the Ray driver, the Ray runner (`PACKSHOT_RUNNER=ray`), Ray Serve shooting.

Importing this package loads no torch.
"""
