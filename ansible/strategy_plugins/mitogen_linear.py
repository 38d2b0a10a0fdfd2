"""Ansible's linear strategy run through Mitogen (https://mitogen.networkgenomics.com/),
without Mitogen's CPU pinning.

Mitogen keeps one Python interpreter per host for the whole run instead of starting one
and unpacking each module for every task, which on this project's playbooks (160 tasks, most
of them one quick Docker API call) is most of a rerun's time: scale=large with nothing to
change took 45-56 s with the plain strategy and 21-25 s through Mitogen, side by side on one
machine. Mitogen ships its strategies inside its package, whose path depends on the
virtualenv; this file is the stable path ansible.cfg names. Connections Mitogen does not
know (Molecule's community.docker.docker) run as usual.

Mitogen pins its processes to CPUs (ansible_mitogen/affinity.py): on a machine of two
CPUs its connection multiplexer gets CPU 0 and Ansible's top-level process, every task's
worker and the host's interpreter (the local connection's modules and the commands they
start) all share CPU 1; on more CPUs each process is pinned to one of them. A Docker host
that also runs the nodes it deploys keeps every CPU busy, and pinned processes cannot move
to an idler one: a rerun with nothing to change over 500 workers took 12.1-12.4 s pinned
and 7.2-8.3 s unpinned, back to back on this 2-CPU machine, and a playbook started from a
task (the scaling study) inherited the pin. The base `Policy` pins nothing; Mitogen reads
`affinity.policy` at each use.
"""

import ansible_mitogen.affinity
from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule

ansible_mitogen.affinity.policy = ansible_mitogen.affinity.Policy()

__all__ = ["StrategyModule"]
