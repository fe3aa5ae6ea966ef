"""What packshot writes and reads back, each with its save/load pair.

`product_model`: the trained model folder (`ProductModel`).
`folders`: an output folder and the work folder of the run that fills it (`claim_work_dir`).
`shots`: a shot's PNG (its recipe inside) and its JSON sidecar, written atomically, read back.
`provenance`: the IPTC digital source type ("made with AI") in the XMP of every image written.
"""
