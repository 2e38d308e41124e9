"""The kit every job uses: plumbing that is the same from one job to the next.

* :mod:`ysh.kit.follower` — :class:`~ysh.kit.follower.Follower`, the CDC follower of a
  job's source tables (publication and slot names, the "is it running" check, batch
  recompute, batch-then-follow, reset) and :class:`~ysh.kit.follower.FollowerRunning`.
* :mod:`ysh.kit.pipes` — :func:`~ysh.kit.pipes.run_entry`, the skeleton of every
  ``python -m ysh.<job>.pipes_entry ACTION``, and :func:`~ysh.kit.pipes.launch`, the one
  Dagster-side launcher of those subprocesses.
* :mod:`ysh.kit.files` — :func:`~ysh.kit.files.atomic_write`,
  :func:`~ysh.kit.files.files_under` and :func:`~ysh.kit.files.data_path`.
* :mod:`ysh.kit.quarantine` — :class:`~ysh.kit.quarantine.QuarantinedRow`, the one
  quarantine row type.

Import the submodules; this package imports nothing, so that the light ones
(``files``, ``quarantine``) stay light.
"""
