"""Hydra's configs, installed as the package ``scmodal_jax.conf`` (setup.py maps this folder there) so that an
installed copy reads them through ``pkg://scmodal_jax.conf``; Hydra only searches a package that has this file."""
