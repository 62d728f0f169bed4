"""Sandboxed execution environments, forked from a pre-initialised template process.

``api`` is the contract (``Launcher``, ``SandboxSpec``, ``SandboxProcess``); ``launcher`` has
the two implementations. The rest, by job:

* ``supervisor``: the server's side of the template (start, restart, control socket);
* ``template``: the template process itself (``python -S -m lamina.engine.sandbox.template``);
* ``child``: what a forked child does until it runs user code;
* ``rootfs``: the base root the template pivots into; ``cgroups``: the pool of cgroup slots;
* ``environment``: one running environment and how it ends;
* ``protocol``: the messages on the control socket; ``linux``: syscalls ``os`` lacks.
"""
