"""Jobs on a Ray cluster: the one driver (`driver.run_on_ray`), the studio's runner
(`runner.RayRunner`, `PACKSHOT_RUNNER=ray`) and low-latency shooting on Ray Serve (`serving`).

Importing this package loads neither Ray nor torch.
"""
