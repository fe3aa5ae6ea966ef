"""The API's routes, one module per resource; thin: checks, a store call, a public shape."""
