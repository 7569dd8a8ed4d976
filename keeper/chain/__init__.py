"""The only package that talks to the chain: bindings, deployment, following, sending."""
