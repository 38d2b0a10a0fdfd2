"""Ansible's linear strategy run through Mitogen (https://mitogen.networkgenomics.com/).

Mitogen keeps one Python interpreter per host for the whole run instead of starting one
and unpacking each module for every task, which on this project's playbooks (160 tasks, most
of them one quick Docker API call) is most of a rerun's time: scale=large with nothing to
change took 45-56 s with the plain strategy and 21-25 s through Mitogen, side by side on one
machine. Mitogen ships its strategies inside its package, whose path depends on the
virtualenv; this file is the stable path ansible.cfg names. Connections Mitogen does not
know (Molecule's community.docker.docker) run as usual.
"""

from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule

__all__ = ["StrategyModule"]
