"""``python -m nasplug.ddp.torchrun ARGS``: PyTorch's ``torchrun`` (``torch.distributed.run``) with
the same arguments, in a process that Linux stops when its parent dies
(:func:`nasplug.processes.die_with_parent`), so a killed launcher leaves no agent behind."""

from __future__ import annotations

from nasplug.processes import die_with_parent

if __name__ == "__main__":
    die_with_parent()
    from torch.distributed.run import main

    main()
