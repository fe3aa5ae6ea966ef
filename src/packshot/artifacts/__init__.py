"""What packshot writes and reads back, each with its save/load pair.

`product_model`: the trained model folder (`ProductModel`).
`shots`: a shot's PNG (its recipe inside) and its JSON sidecar, written atomically, read back.
"""
