"""Scale-out: where rollouts are played (`rollouts`: this process, or Ray workers in
`ray_backend`), rollout workers (`worker`), the learner's weights as plain data (`weights`) and
a data-parallel learner (`learner_group`). Ray is imported only where it is used.
"""
