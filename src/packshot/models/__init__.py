"""Diffusion models: their families (`families/`), where they run (`device`), the Hub (`hub`),
finding and loading them (`load`), what one is (`describe`) and the tiny stand-ins (`standins`).

Import the submodule you need: `families` and `hub` stay free of torch (the API imports them);
the others import torch and diffusers.
"""
