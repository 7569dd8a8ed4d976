"""The loops that tie chain, store and peers together: sync, evaluate, agree, submit."""
