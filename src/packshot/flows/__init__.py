"""Flows: the procedures that drive several core packages end to end.

A flow sits above the core (intake, train, shoot, place, judge) and below the service and the
surfaces: `judged` (a shoot judged against the product's photos, `--best K`), `dreambench`
(the DreamBench protocol: train, shoot, place, score, tabulate) and `demo` (the main job on the
bundled sample product). Core packages never import a flow.
"""
