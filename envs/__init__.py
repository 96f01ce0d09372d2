"""Simulations for robodiff; importing a subpackage (e.g. envs.pusht) registers its gymnasium ids."""
