"""What packshot writes and reads back, each with its save/load pair.

`product_model`: the trained model folder (`ProductModel`).
"""
